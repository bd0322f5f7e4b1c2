"""A layer that keeps the last step of a sequence."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="ml")
class LastTimestep(keras.layers.Layer):
    """Returns ``x[:, -1, :]``: the features of the most recent time step.

    A causal network's last step has seen the whole receptive field, so it is the natural
    summary to put a head on. A named layer instead of a ``Lambda`` keeps ``.keras``
    safe-mode loading working.

    Example:
        >>> import numpy as np
        >>> tuple(LastTimestep()(np.zeros((2, 5, 3), "float32")).shape)
        (2, 3)
    """

    EXAMPLE = {"init_kwargs": {}, "input_shape": (2, 5, 3)}
    """Arguments ``ml.testing.run_layer_test`` uses."""

    def call(self, inputs):
        return inputs[:, -1, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
