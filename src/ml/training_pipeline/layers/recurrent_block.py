"""Stacked LSTM layers, shared by the recurrent families (lstm, cnn_lstm, attention_lstm, embedding_lstm)."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def stacked_lstm(x, units: Sequence[int], dropout: float, last_returns_sequences: bool, prefix: str):
    """LSTM layers with dropout between them; dropout sits outside the cell so the fused kernels stay usable.

    Example:
        >>> y = stacked_lstm(keras.Input((30, 4)), [8, 4], 0.1, last_returns_sequences=False, prefix="lstm")
        >>> tuple(y.shape)
        (None, 4)
    """
    for i, n in enumerate(units):
        is_last = i == len(units) - 1
        # not unrolled: measured 1.44x faster training at batch 32 in steady state, but 4x longer tracing,
        # 10x longer ONNX export and 7x slower ONNX inference (benchmarks/train_speed.py, docs/pipeline.md)
        x = keras.layers.LSTM(n, return_sequences=last_returns_sequences or not is_last, name=f"{prefix}{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"{prefix}{i}_dropout")(x)
    return x
