"""Losses the stock Keras set lacks, serializable so ``.keras`` files load in safe mode."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ml")
class PinballLoss(keras.losses.Loss):
    """Quantile (pinball) loss averaged over the quantiles: ``max(q * e, (q - 1) * e)``, ``e = y - y_hat``.

    ``y_true`` has one column (or is 1-D); ``y_pred`` has one column per quantile.

    Example:
        >>> import numpy as np
        >>> float(PinballLoss([0.5])(np.array([[1.0]]), np.array([[0.0]])))
        0.5
    """

    def __init__(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9), name: str = "pinball", **kwargs):
        super().__init__(name=name, **kwargs)
        self.quantiles = [float(q) for q in quantiles]

    def call(self, y_true, y_pred):
        y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, 1))
        q = ops.convert_to_tensor(self.quantiles, dtype=y_pred.dtype)
        error = y_true - y_pred
        return ops.mean(ops.maximum(q * error, (q - 1.0) * error), axis=-1)

    def get_config(self):
        return {**super().get_config(), "quantiles": self.quantiles}


@keras.saving.register_keras_serializable(package="ml")
class Log2MSE(keras.losses.Loss):
    """``mean((log2 y - log2 y_hat) ** 2)`` for strictly positive targets and predictions.

    Args:
        epsilon: floor applied to both sides before the log, so a zero never gives ``inf``.

    Example:
        >>> import numpy as np
        >>> float(Log2MSE()(np.array([[4.0]]), np.array([[2.0]])))
        1.0
    """

    def __init__(self, epsilon: float = 1e-12, name: str = "log2_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
        log2 = lambda v: ops.log(ops.maximum(v, self.epsilon)) / ops.log(2.0)  # noqa: E731
        return ops.mean(ops.square(log2(y_true) - log2(y_pred)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
