"""A functional Keras model whose ``predict`` skips the per-call set-up for a single small batch.

``keras.Model.predict`` builds a data adapter, an iterator and a callback list on every call:
about 50-70 ms here for one window, while the compiled prediction itself takes 2-6 ms
(``benchmarks/onnx_latency.py``: Keras' own vs the factory's predict). A trading bot predicts one window at a time, so the factory
builds this subclass: a call with at most ``batch_size`` rows (32 when not given), no callbacks
and no ``steps`` runs the same compiled function through ``predict_on_batch``; anything else is
Keras' own ``predict``, one batch per execution. The outputs are the same numbers.

Why one batch per execution in ``predict``: with ``steps_per_execution=16`` (the factory's compile
setting, for training speed) Keras hands its predict function a Python list of up to 16 batches, and
every different list length (a part of 3 batches, one of 7, each walk-forward fold's) traced a new
graph: the "triggered tf.function retracing" warnings of ``atb evaluate --walk-forward``. Prediction
batches are 1024 rows, so grouping them saved nothing measurable.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from ml.training_pipeline.models.kinds.multi_worker import MultiWorkerTrainingFixes

_KERAS_DEFAULT_BATCH = 32


def _rows(x) -> int | None:
    """Rows of an array or of a dict/list of arrays; ``None`` for anything else (datasets, generators)."""
    if isinstance(x, np.ndarray):
        return len(x)
    if isinstance(x, Mapping) and x and all(isinstance(v, np.ndarray) for v in x.values()):
        return len(next(iter(x.values())))
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, np.ndarray) for v in x):
        return len(x[0])
    return None


@keras.saving.register_keras_serializable(package="ml")
class FastPredictModel(MultiWorkerTrainingFixes, keras.Model):
    """``keras.Model(inputs, outputs)`` with a fast path in :meth:`predict` for one small batch (and the fixes
    Keras needs to train under ``MultiWorkerMirroredStrategy``, see :mod:`.multi_worker`).

    Example:
        >>> inputs = keras.Input((4,))
        >>> model = FastPredictModel(inputs, keras.layers.Dense(1)(inputs))
        >>> model.predict(np.zeros((1, 4), "float32"), verbose=0).shape
        (1, 1)
    """

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        rows = _rows(x)
        if rows is not None and 0 < rows <= (batch_size or _KERAS_DEFAULT_BATCH) and steps is None and not callbacks:
            return keras.tree.map_structure(np.asarray, self.predict_on_batch(x))
        grouped, self.steps_per_execution = self.steps_per_execution, 1
        try:
            return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)
        finally:
            self.steps_per_execution = grouped
