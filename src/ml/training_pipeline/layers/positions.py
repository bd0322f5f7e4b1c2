"""Sinusoidal position encoding with an explicit length limit."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def sinusoid_table(length: int, width: int) -> np.ndarray:
    """The ``(length, width)`` table of Vaswani et al.: sin on even columns, cos on odd ones.

    Example:
        >>> sinusoid_table(3, 4)[0].tolist()
        [0.0, 1.0, 0.0, 1.0]
    """
    positions = np.arange(length, dtype=np.float64)[:, None]
    rates = 1.0 / np.power(10000.0, (2 * (np.arange(width) // 2)) / max(width, 1))
    angles = positions * rates[None, :]
    table = np.where(np.arange(width) % 2 == 0, np.sin(angles), np.cos(angles))
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="ml")
class SinusoidalPositions(keras.layers.Layer):
    """Adds a fixed sinusoidal position code to a ``(batch, time, width)`` sequence.

    The table is a constant (no weights, so no length is baked into a checkpoint), but a limit
    keeps a user from feeding sequences far longer than the model was designed for: a longer
    sequence is refused when the layer is built.

    Args:
        max_length: the longest sequence accepted.

    Example:
        >>> import numpy as np
        >>> tuple(SinusoidalPositions(max_length=16)(np.zeros((2, 5, 4), "float32")).shape)
        (2, 5, 4)
    """

    EXAMPLE = {"init_kwargs": {"max_length": 8}, "input_shape": (2, 5, 4)}

    def __init__(self, max_length: int = 512, **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)

    def build(self, input_shape):
        length = input_shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(f"sequence length {length} is longer than the positional limit "
                             f"max_length={self.max_length}; raise max_length or shorten the window. "
                             f"Received: input shape {tuple(input_shape)}")
        self._table = sinusoid_table(self.max_length, int(input_shape[-1]))

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        return inputs + ops.cast(ops.convert_to_tensor(self._table)[None, :length, :], inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}
