"""Self-attention over the rows of a zero-padded matrix, pooled to one vector."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ml")
class RowSetAttention(keras.layers.Layer):
    """Encodes a ``(batch, rows, columns)`` matrix as a set of row tokens with pre-norm transformer blocks.

    Rows that are entirely zero are padding (a ``k x (n-k)`` matrix padded to the largest ``k``):
    they are masked out of the attention and of the mean pooling. Each row gets a learned
    position embedding (row ``i`` of a generator matrix is not interchangeable with row ``j``).

    Args:
        d_model: token width.
        num_heads: attention heads.
        ff_dim: feed-forward width.
        num_blocks: transformer blocks.
        dropout: dropout rate inside the blocks.
        max_rows: rows the position table covers.

    Example:
        >>> import numpy as np
        >>> tuple(RowSetAttention(8, 2, 16, 1, max_rows=6)(np.zeros((2, 6, 5), "float32")).shape)
        (2, 8)
    """

    EXAMPLE = {"init_kwargs": {"d_model": 8, "num_heads": 2, "ff_dim": 16, "num_blocks": 1, "max_rows": 6},
               "input_shape": (3, 6, 5)}

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, num_blocks: int = 1, dropout: float = 0.0,
                 max_rows: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.ff_dim = int(d_model), int(num_heads), int(ff_dim)
        self.num_blocks, self.dropout, self.max_rows = int(num_blocks), float(dropout), int(max_rows)
        self.project = keras.layers.Dense(self.d_model, name="project")
        self.positions = keras.layers.Embedding(self.max_rows, self.d_model, name="positions")
        blocks = range(self.num_blocks)
        # flat lists of sublayers (Keras tracks lists of layers; per-block dicts inside a list it would not)
        self.norm1 = [keras.layers.LayerNormalization(name=f"norm1_{i}") for i in blocks]
        self.attention = [keras.layers.MultiHeadAttention(self.num_heads, max(1, self.d_model // self.num_heads),
                                                          name=f"attention_{i}") for i in blocks]
        self.norm2 = [keras.layers.LayerNormalization(name=f"norm2_{i}") for i in blocks]
        self.ff1 = [keras.layers.Dense(self.ff_dim, activation="relu", name=f"ff1_{i}") for i in blocks]
        self.ff2 = [keras.layers.Dense(self.d_model, name=f"ff2_{i}") for i in blocks]
        self.drop = keras.layers.Dropout(self.dropout)
        self.final_norm = keras.layers.LayerNormalization(name="final_norm")

    def build(self, input_shape):
        rows = input_shape[1]
        if rows is not None and rows > self.max_rows:
            raise ValueError(f"RowSetAttention covers {self.max_rows} rows. Received: {rows} rows")
        self.project.build(input_shape)
        self.positions.build((None, rows))
        token_shape = (input_shape[0], rows, self.d_model)
        for i in range(self.num_blocks):
            self.norm1[i].build(token_shape)
            self.attention[i].build(token_shape, token_shape)
            self.norm2[i].build(token_shape)
            self.ff1[i].build(token_shape)
            self.ff2[i].build((input_shape[0], rows, self.ff_dim))
        self.final_norm.build(token_shape)

    def call(self, inputs, training=False):
        present = ops.cast(ops.any(ops.not_equal(inputs, 0.0), axis=-1), inputs.dtype)  # (batch, rows)
        rows = ops.shape(inputs)[1]
        tokens = self.project(inputs) + self.positions(ops.arange(rows))[None]
        attention_mask = ops.cast(present[:, None, :] * present[:, :, None], "bool")
        for i in range(self.num_blocks):
            h = self.norm1[i](tokens)
            h = self.attention[i](h, h, attention_mask=attention_mask, training=training)
            tokens = tokens + self.drop(h, training=training)
            h = self.ff2[i](self.ff1[i](self.norm2[i](tokens)))
            tokens = tokens + self.drop(h, training=training)
        tokens = self.final_norm(tokens)
        weights = present[:, :, None]
        return ops.sum(tokens * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.d_model)

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads, "ff_dim": self.ff_dim,
                "num_blocks": self.num_blocks, "dropout": self.dropout, "max_rows": self.max_rows}
