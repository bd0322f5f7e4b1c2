"""Adds a fixed linear baseline to a network's output: the network learns the correction to the baseline."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ml")
class BaselineOffset(keras.layers.Layer):
    """``baseline_inputs @ weights + bias + gate * network_output`` with fixed ``weights`` and ``bias``.

    The baseline (e.g. a HAR-RV regression fitted on the training part) is part of the model, so its
    ``.keras`` file and its ONNX export return the full forecast. ``gate`` is one trainable scalar that
    starts at 0 (ReZero, Bachlechner et al. 2020): the untrained model *is* the baseline, and the
    network's correction grows only as far as the training loss rewards it; early stopping on a calm
    validation part then falls back to the baseline, not to a constant.

    Args:
        weights: one coefficient per baseline input column (in the model's output units).
        bias: the baseline's intercept (in the model's output units).

    Example:
        >>> import numpy as np
        >>> layer = BaselineOffset(weights=[2.0, 0.0], bias=1.0)
        >>> out = layer([np.ones((1, 1), "float32"), np.array([[3.0, 5.0]], "float32")])
        >>> float(out[0, 0])  # the baseline alone while the gate is 0
        7.0
    """

    def __init__(self, weights: Sequence[float], bias: float, **kwargs):
        super().__init__(**kwargs)
        self.baseline_weights = [float(w) for w in weights]
        self.baseline_bias = float(bias)

    def build(self, input_shape):
        self.gate = self.add_weight(name="gate", shape=(), initializer="zeros", trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        network_output, baseline_inputs = inputs
        coefficients = ops.convert_to_tensor([[w] for w in self.baseline_weights], dtype=baseline_inputs.dtype)
        baseline = ops.matmul(baseline_inputs, coefficients) + self.baseline_bias
        return ops.cast(baseline, network_output.dtype) + ops.cast(self.gate, network_output.dtype) * network_output

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weights": self.baseline_weights, "bias": self.baseline_bias}
