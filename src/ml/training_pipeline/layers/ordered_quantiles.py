"""A head activation that keeps quantile outputs ordered."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ml")
class OrderedQuantiles(keras.layers.Layer):
    """Maps ``(batch, q)`` raw values to ordered quantiles: ``out_0 = raw_0``,
    ``out_i = out_{i-1} + softplus(raw_i)``.

    Quantile crossing (a 90% quantile below the 10% one) is impossible by construction, and
    the map is smooth, so the pinball loss trains every unit.

    Example:
        >>> import numpy as np
        >>> out = OrderedQuantiles()(np.array([[0.0, -5.0, 3.0]], "float32"))
        >>> bool(np.all(np.diff(np.asarray(out), axis=1) > 0))
        True
    """

    EXAMPLE = {"init_kwargs": {}, "input_shape": (4, 3)}
    """Arguments ``ml.testing.run_layer_test`` uses."""

    def call(self, inputs):
        base = inputs[:, :1]
        steps = ops.softplus(inputs[:, 1:])
        return ops.concatenate([base, base + ops.cumsum(steps, axis=1)], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape
