"""Splitting a width into attention heads (shared by the hand-written attention layers)."""

from __future__ import annotations

from keras import ops


def head_dim(width: int, num_heads: int) -> int:
    """Width of one head; refuses a width that the heads do not divide.

    Example:
        >>> head_dim(96, 8)
        12
    """
    if width % num_heads:
        raise ValueError(f"d_model must be divisible by num_heads. Received: d_model={width}, num_heads={num_heads}")
    return width // num_heads


def split_heads(x, num_heads: int, size: int):
    """``(batch, time, num_heads * size)`` -> ``(batch, num_heads, time, size)``."""
    batch, length = ops.shape(x)[0], ops.shape(x)[1]
    return ops.transpose(ops.reshape(x, (batch, length, num_heads, size)), (0, 2, 1, 3))
