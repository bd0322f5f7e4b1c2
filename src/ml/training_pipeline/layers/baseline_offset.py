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
        initial_gate: the gate's starting value (0: the untrained model is the baseline).

    Example:
        >>> import numpy as np
        >>> layer = BaselineOffset(weights=[2.0, 0.0], bias=1.0)
        >>> out = layer([np.ones((1, 1), "float32"), np.array([[3.0, 5.0]], "float32")])
        >>> float(out[0, 0])  # the baseline alone while the gate is 0
        7.0
    """

    # a non-zero gate, so the harness sees gradients reach the network's output too (at 0 they do after one step)
    EXAMPLE = {"init_kwargs": {"weights": [0.5, -0.25, 1.0], "bias": 0.3, "initial_gate": 0.5},
               "input_shape": [(4, 1), (4, 3)]}
    """Arguments ``ml.testing.run_layer_test`` uses."""

    def __init__(self, weights: Sequence[float], bias: float, initial_gate: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.baseline_weights = [float(w) for w in weights]
        self.baseline_bias = float(bias)
        self.initial_gate = float(initial_gate)

    def build(self, input_shape):
        self.gate = self.add_weight(name="gate", shape=(), trainable=True,
                                    initializer=keras.initializers.Constant(self.initial_gate))
        super().build(input_shape)

    def call(self, inputs):
        network_output, baseline_inputs = inputs
        coefficients = ops.convert_to_tensor([[w] for w in self.baseline_weights], dtype=baseline_inputs.dtype)
        baseline = ops.matmul(baseline_inputs, coefficients) + self.baseline_bias
        return ops.cast(baseline, network_output.dtype) + ops.cast(self.gate, network_output.dtype) * network_output

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weights": self.baseline_weights, "bias": self.baseline_bias,
                "initial_gate": self.initial_gate}
