"""An output that is above a floor by construction, learned in log2 space."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ml")
class Log2SoftplusPositive(keras.layers.Layer):
    """``minimum * 2 ** softplus(z)``: always >= ``minimum``; ``softplus(z)`` is the log2 excess over it.

    Suits targets with a known floor such as the m-height (>= 1): the log2-MSE loss sees
    ``log2 y_hat = log2 minimum + softplus(z)``, which is smooth and never below the floor.

    Example:
        >>> import numpy as np
        >>> float(np.asarray(Log2SoftplusPositive(1.0)(np.array([[-30.0]], "float32")))[0, 0])
        1.0
    """

    EXAMPLE = {"init_kwargs": {"minimum": 1.0}, "input_shape": (4, 1)}

    def __init__(self, minimum: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(minimum, (int, float)) or isinstance(minimum, bool) or not minimum > 0:
            raise ValueError(f"minimum must be a number > 0. Received: minimum={minimum!r}")
        self.minimum = float(minimum)

    def call(self, inputs):
        return self.minimum * ops.exp(ops.softplus(inputs) * 0.6931471805599453)  # 2 ** x = e ** (x ln 2)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "minimum": self.minimum}
