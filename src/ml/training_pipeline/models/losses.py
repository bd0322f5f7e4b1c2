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

    With sample weights ``w`` Keras reduces a batch of ``B`` rows to ``sum_i w_i * loss_i / B``
    (see :mod:`ml.training_pipeline.common.sample_weights`).

    Args:
        epsilon: floor applied to both sides before the log (default 1e-12, i.e. log2 >= -39.9),
            so a zero or an underflowed prediction gives a large finite loss instead of ``inf``;
            targets are checked to be > 0 before training, so the floor only ever touches predictions.

    Example:
        >>> import numpy as np
        >>> float(Log2MSE()(np.array([[4.0]]), np.array([[2.0]])))
        1.0
    """

    def __init__(self, epsilon: float = 1e-12, name: str = "log2_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        return log2_mse(y_true, y_pred, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def log2_mse(y_true, y_pred, epsilon: float = 1e-12):
    """Per-row log2-MSE (the function behind :class:`Log2MSE` and :class:`Log2MSEMetric`)."""
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
    log2 = lambda v: ops.log(ops.maximum(v, epsilon)) * 1.4426950408889634  # noqa: E731  (1 / ln 2)
    return ops.mean(ops.square(log2(y_true) - log2(y_pred)), axis=-1)


@keras.saving.register_keras_serializable(package="ml")
class Log2MSEMetric(keras.metrics.MeanMetricWrapper):
    """log2-MSE as a metric (weighted by ``sample_weight`` when given, as a weighted mean).

    Example:
        >>> import numpy as np
        >>> metric = Log2MSEMetric()
        >>> metric.update_state(np.array([[8.0]]), np.array([[2.0]]))
        >>> float(metric.result())
        4.0
    """

    def __init__(self, name: str = "log2_mse", dtype=None, epsilon: float = 1e-12):
        super().__init__(log2_mse, name=name, dtype=dtype, epsilon=epsilon)
        self.epsilon = float(epsilon)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "epsilon": self.epsilon}
