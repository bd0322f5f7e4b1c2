"""A hidden Dense layer with dropout, shared by the family heads."""

from __future__ import annotations

import keras


def dense_block(x, units: int, dropout: float, name: str):
    """Applies ``Dense(units, relu)`` and dropout; returns ``x`` unchanged when ``units`` is 0.

    Example:
        >>> y = dense_block(keras.Input((64,)), 32, 0.1, name="dense")
    """
    if units:
        x = keras.layers.Dense(units, activation="relu", name=name)(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x
