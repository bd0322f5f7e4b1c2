"""Additive (Bahdanau-style) attention pooling over the time axis."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ml")
class TemporalAttention(keras.layers.Layer):
    """Pools a sequence ``(batch, time, features)`` into ``(batch, features)``.

    Each step gets a score ``v . tanh(W h_t + b)``; a softmax over time turns the scores
    into weights that sum to one, and the output is the weighted sum of the steps. The
    weights are what :func:`ml.training_pipeline.models.extract_attention_weights` returns.

    Args:
        units: size of the hidden scoring projection.
        **kwargs: standard layer arguments (``name``, ``dtype``...).

    Example:
        >>> import numpy as np
        >>> layer = TemporalAttention(units=8)
        >>> tuple(layer(np.ones((2, 5, 3), "float32")).shape)
        (2, 3)
    """

    EXAMPLE = {"init_kwargs": {"units": 4}, "input_shape": (2, 5, 3)}
    """Arguments ``ml.testing.run_layer_test`` uses."""

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive int. Received: units={units!r}")
        self.units = units

    def build(self, input_shape):
        features = input_shape[-1]
        self.score_kernel = self.add_weight(
            name="score_kernel", shape=(features, self.units), initializer="glorot_uniform"
        )
        self.score_bias = self.add_weight(name="score_bias", shape=(self.units,), initializer="zeros")
        self.score_vector = self.add_weight(
            name="score_vector", shape=(self.units, 1), initializer="glorot_uniform"
        )

    def attention_weights(self, inputs):
        """Softmax weights over time, shape ``(batch, time)``; each row sums to 1."""
        hidden = ops.tanh(ops.matmul(inputs, self.score_kernel) + self.score_bias)
        scores = ops.squeeze(ops.matmul(hidden, self.score_vector), axis=-1)
        return ops.softmax(scores, axis=-1)

    def call(self, inputs):
        weights = self.attention_weights(inputs)
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}
