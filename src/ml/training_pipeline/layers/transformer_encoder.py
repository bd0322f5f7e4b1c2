"""The pre-norm transformer encoder body shared by the transformer families and the multimodal log model.

Embedding (a projection of each step to ``d_model`` plus sinusoidal positions), pre-norm blocks (attention and a
feed-forward network, each in a residual branch) and a mean over the unpadded steps. ``attention(h, mask, name)``
and ``dense(units, activation, name)`` make the layers, so the plain, MC-dropout and Bayesian encoders share one
body.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from ml.training_pipeline.common.tensors import PADDING_MASK
from ml.training_pipeline.layers.activations import gelu_tanh
from ml.training_pipeline.layers.positions import SinusoidalPositions


def _split_inputs(inputs):
    if isinstance(inputs, Mapping):
        return inputs["inputs"], inputs.get(PADDING_MASK)
    return inputs, None


def _embed(x, d_model: int, max_length: int, dropout: float, dense):
    x = dense(d_model, None, "embedding")(x)
    x = SinusoidalPositions(max_length, name="positions")(x)
    return keras.layers.Dropout(dropout, name="embedding_dropout")(x) if dropout else x


def _pool(x, mask, final_norm: bool):
    if final_norm:
        x = keras.layers.LayerNormalization(name="final_norm")(x)
    return keras.layers.GlobalAveragePooling1D(name="pool")(x, mask=mask)


def _feed_forward(x, ff_dim, d_model, dropout, name, dense):
    h = keras.layers.LayerNormalization(name=f"{name}_ff_norm")(x)
    h = dense(ff_dim, "gelu_tanh", f"{name}_ff1")(h)
    if dropout:
        h = keras.layers.Dropout(dropout, name=f"{name}_ff_dropout")(h)
    h = dense(d_model, None, f"{name}_ff2")(h)
    if dropout:
        h = keras.layers.Dropout(dropout, name=f"{name}_ff_out_dropout")(h)
    return keras.layers.Add(name=f"{name}_ff_residual")([x, h])


def plain_dense(units, activation, name):
    # exact GELU emits Erfc, which ONNX Runtime rejects: the tanh approximation exports
    return keras.layers.Dense(units, activation=encoder_activation(activation), name=name)


def encoder_activation(name):
    return gelu_tanh if name == "gelu_tanh" else name


def keras_self_attention(num_heads: int, d_model: int, dropout: float):
    """Self-attention by Keras' MultiHeadAttention, its scores kept in the graph for ``interpret``."""
    def attend(h, mask, name):
        return keras.layers.MultiHeadAttention(num_heads, d_model // num_heads, dropout=dropout, name=name)(
            h, h, value_mask=mask, return_attention_scores=True)[0]

    return attend


def transformer_encoder(inputs, *, d_model, num_heads, ff_dim, num_layers, dropout, max_length, final_norm, attention, dense):
    """Embedding, pre-norm blocks and pooling; ``attention(h, mask, name)`` and ``dense(units, activation, name)``
    make the layers, so the plain, MC-dropout and Bayesian encoders share one body."""
    x, mask = _split_inputs(inputs)
    x = _embed(x, d_model, max_length, dropout, dense)
    for i in range(num_layers):
        name = f"block{i}"
        h = keras.layers.LayerNormalization(name=f"{name}_attention_norm")(x)
        h = attention(h, mask, f"{name}_attention")
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"{name}_attention_dropout")(h)
        x = keras.layers.Add(name=f"{name}_attention_residual")([x, h])
        x = _feed_forward(x, ff_dim, d_model, dropout, name, dense)
    return _pool(x, mask, final_norm)
