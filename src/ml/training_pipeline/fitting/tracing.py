"""One trace of the training step instead of two: the training state built before Keras traces it.

Without a distribution strategy, Keras 3 on TensorFlow builds the optimizer's slots and the compiled loss and
metrics inside the first traced training step. Variables created during a trace make TensorFlow trace the
step a second time (``tf.function`` lifts them on the first trace and retraces without creating any), so the
most expensive part of a short fit, the trace, was paid twice. Building that state eagerly from two rows
first leaves one trace: the first fit of a tiny TCN on 1,803 windows took 2.5 s instead of 3.9 s, a tiny
LSTM's 4.8 s instead of 6.7 s (here, interleaved runs); every later epoch is unchanged.

Example:
    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    >>> build_training_state(model, np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32"))
    >>> model.optimizer.built
    True
"""

from __future__ import annotations

from typing import Any


def build_training_state(model: Any, x: Any, y: Any) -> None:
    """Builds ``model``'s optimizer, compiled loss and compiled metrics from the first two rows of ``(x, y)``.

    Nothing is trained and no metric keeps a value (they are reset); what is built already (a second fit; the
    optimizer of a model compiled from a saved config) is left as it is, and so is a model that fits under a
    distribution strategy (Keras builds the state itself there, in the strategy's scope).

    Args:
        model: a compiled Keras model.
        x: its inputs as ``fit`` takes them (an array, a list or a dict of arrays).
        y: its targets (an array, or a structure of arrays).
    """
    import keras
    import tensorflow as tf

    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy():
        return
    if any(getattr(metric, "built", None) is False for metric in model.metrics):  # the compiled loss and metrics
        x, y = (keras.tree.map_structure(lambda a: a[:2], part) for part in (x, y))
        y_pred = model(x, training=False)
        model.compute_loss(x, y, y_pred, training=False)
        model.compute_metrics(x, y, y_pred, sample_weight=None)
        model.reset_metrics()
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
