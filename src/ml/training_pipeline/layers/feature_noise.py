"""Training-time Gaussian noise scaled by each feature's spread."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ml")
class FeatureNoise(keras.layers.Layer):
    """Adds ``rate * std_f * N(0, 1)`` to feature ``f`` while training; the identity otherwise.

    ``std_f`` is the feature's standard deviation over the batch (every axis but the last), so the
    noise follows each feature's own scale without a fitted statistic. The noise exists only under
    ``training=True``: evaluation, ``predict`` and the ONNX graph see the exact input.

    Args:
        rate: noise standard deviation as a fraction of the feature's (>= 0).
        seed: seed of the noise generator.

    Example:
        >>> import numpy as np
        >>> x = np.ones((4, 3), "float32")
        >>> bool(np.all(np.asarray(FeatureNoise(0.1)(x)) == x))  # inference: unchanged
        True
    """

    EXAMPLE = {"init_kwargs": {"rate": 0.1}, "input_shape": (4, 5, 3)}

    def __init__(self, rate: float = 0.05, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 10:
            raise ValueError(f"rate must be a number in [0, 10). Received: rate={rate!r}")
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            axes = tuple(range(len(inputs.shape) - 1))
            spread = ops.std(inputs, axis=axes, keepdims=True)
            noise = keras.random.normal(ops.shape(inputs), dtype=inputs.dtype, seed=self.seed_generator)
            return inputs + self.rate * spread * noise
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
