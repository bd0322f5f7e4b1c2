"""Recurrent families: a plain LSTM baseline, CNN-LSTM and attention-LSTM."""

from __future__ import annotations

from collections.abc import Sequence

from ml.training_pipeline.common.arguments import check_positive_int, check_rate, check_units
from ml.training_pipeline.models.registry import register_model

# Recurrent nets plateau slowly: cut the learning rate after a third of the patience.
_RECURRENT_CALLBACKS = {"lr_patience_fraction": 1 / 3, "lr_factor": 0.5, "min_lr": 1e-6}

RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict]] = {
    "lstm": {
        "lightweight": {"units": (32,), "dropout": 0.1, "learning_rate": 1e-3},
        "default": {"units": (64,), "dropout": 0.2, "learning_rate": 1e-3},
        "deep": {"units": (128, 64), "dropout": 0.3, "learning_rate": 5e-4},
        "tiny": {"units": (4, 4), "dropout": 0.1, "learning_rate": 1e-3},
    },
    "cnn_lstm": {
        "lightweight": {"conv_filters": (32,), "kernel_size": 3, "pool_size": 2, "lstm_units": (32,),
                        "dense_units": 16, "dropout": 0.1, "learning_rate": 1e-3},
        "default": {"conv_filters": (64, 64), "kernel_size": 3, "pool_size": 2, "lstm_units": (64,),
                    "dense_units": 32, "dropout": 0.2, "learning_rate": 1e-3},
        "deep": {"conv_filters": (64, 128, 128), "kernel_size": 3, "pool_size": 2, "lstm_units": (128, 64),
                 "dense_units": 64, "dropout": 0.3, "learning_rate": 5e-4},
        "tiny": {"conv_filters": (4,), "kernel_size": 3, "pool_size": 2, "lstm_units": (4,),
                 "dense_units": 4, "dropout": 0.1, "learning_rate": 1e-3},
    },
    "attention_lstm": {
        "lightweight": {"lstm_units": (64, 32), "num_attention_heads": 2, "attention_key_dim": 16,
                        "dense_units": 32, "dropout": 0.1, "learning_rate": 1e-3},
        "default": {"lstm_units": (128, 64), "num_attention_heads": 4, "attention_key_dim": 16,
                    "dense_units": 64, "dropout": 0.2, "learning_rate": 1e-3},
        "deep": {"lstm_units": (256, 128, 64), "num_attention_heads": 8, "attention_key_dim": 16,
                 "dense_units": 128, "dropout": 0.3, "learning_rate": 5e-4},
        "tiny": {"lstm_units": (4, 4), "num_attention_heads": 1, "attention_key_dim": 4, "dense_units": 4,
                 "dropout": 0.1, "learning_rate": 1e-3},
    },
}


@register_model(
    "lstm",
    description="Stacked LSTM baseline; the last hidden state feeds the head.",
    variants=RECOMMENDED_HYPERPARAMETERS["lstm"],
    callback_settings=_RECURRENT_CALLBACKS,
)
def build_lstm(inputs, *, units: Sequence[int], dropout: float):
    """Plain stacked LSTM.

    Args:
        inputs: a ``(batch, time, features)`` Keras tensor.
        units: hidden size of each LSTM layer.
        dropout: dropout after each LSTM layer.

    Returns:
        The ``(batch, units[-1])`` feature tensor.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("lstm", input_shape=(60, 15), units=(32,))
    """
    from ml.training_pipeline.layers import stacked_lstm  # imports Keras: only when a model is built

    return stacked_lstm(inputs, check_units("units", units), check_rate("dropout", dropout), False, "lstm")


@register_model(
    "cnn_lstm",
    description="Conv1D feature extractor and max pooling, then LSTM over the shorter sequence.",
    variants=RECOMMENDED_HYPERPARAMETERS["cnn_lstm"],
    aliases=("adaptive", "cnn-lstm"),
    callback_settings=_RECURRENT_CALLBACKS,
)
def build_cnn_lstm(
    inputs,
    *,
    conv_filters: Sequence[int],
    kernel_size: int,
    pool_size: int,
    lstm_units: Sequence[int],
    dense_units: int,
    dropout: float,
):
    """CNN-LSTM: local patterns by convolution, then a recurrence over the pooled sequence.

    Pooling halves the steps the LSTM has to walk, which is where its time goes.

    Args:
        inputs: a ``(batch, time, features)`` Keras tensor.
        conv_filters: filters of each Conv1D layer.
        kernel_size: width of the convolutions.
        pool_size: max-pooling factor after the convolutions (1 disables pooling).
        lstm_units: hidden size of each LSTM layer.
        dense_units: hidden Dense layer before the head (0 for none).
        dropout: dropout rate.

    Returns:
        The feature tensor.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("adaptive", input_shape=(60, 15), variant="lightweight")
    """
    import keras

    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        dense_block,
        stacked_lstm,
    )

    dropout = check_rate("dropout", dropout)
    x = inputs
    for i, filters in enumerate(check_units("conv_filters", conv_filters)):
        x = keras.layers.Conv1D(filters, check_positive_int("kernel_size", kernel_size), padding="same",
                                activation="relu", name=f"conv{i}")(x)
    if check_positive_int("pool_size", pool_size) > 1:
        x = keras.layers.MaxPooling1D(pool_size, padding="same", name="pool")(x)
    x = stacked_lstm(x, check_units("lstm_units", lstm_units), dropout, False, "lstm")
    return dense_block(x, check_positive_int("dense_units", dense_units, minimum=0), dropout, "dense")


@register_model(
    "attention_lstm",
    description="Stacked LSTM, multi-head self-attention over its steps (residual, layer norm), head on the last step.",
    variants=RECOMMENDED_HYPERPARAMETERS["attention_lstm"],
    aliases=("attention-lstm", "lstm_attention"),
    callback_settings=_RECURRENT_CALLBACKS,
)
def build_attention_lstm(
    inputs,
    *,
    lstm_units: Sequence[int],
    num_attention_heads: int,
    attention_key_dim: int,
    dense_units: int,
    dropout: float,
):
    """Attention-LSTM: every LSTM layer returns sequences; Keras' ``MultiHeadAttention`` relates the steps.

    The attended sequence is ``LayerNorm(h + Dropout(MHA(h, h)))``; the head reads its last step, whose query
    has looked at every step. The scores stay in the graph (``return_attention_scores=True``), so
    ``extract_attention_weights`` and ``interpret`` read them, also from a model loaded from ``.keras``.

    Args:
        inputs: a ``(batch, time, features)`` Keras tensor.
        lstm_units: hidden size of each LSTM layer, e.g. ``(128, 64)``.
        num_attention_heads: attention heads.
        attention_key_dim: size of each head's query and key projections.
        dense_units: hidden Dense layer before the head (0 for none).
        dropout: dropout rate (between LSTMs, on the attention weights and on its output).

    Returns:
        The feature tensor.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("attention_lstm", input_shape=(60, 15), num_attention_heads=4, attention_key_dim=64)
    """
    import keras

    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        LastTimestep,
        dense_block,
        stacked_lstm,
    )

    dropout = check_rate("dropout", dropout)
    h = stacked_lstm(inputs, check_units("lstm_units", lstm_units), dropout, True, "lstm")
    attention = keras.layers.MultiHeadAttention(check_positive_int("num_attention_heads", num_attention_heads),
                                                check_positive_int("attention_key_dim", attention_key_dim),
                                                dropout=dropout, name="multi_head_attention")
    attended, _ = attention(h, h, return_attention_scores=True)
    if dropout > 0:
        attended = keras.layers.Dropout(dropout, name="attention_dropout")(attended)
    x = keras.layers.LayerNormalization(name="attention_norm")(keras.layers.Add(name="attention_residual")([h, attended]))
    x = LastTimestep(name="last_timestep")(x)
    return dense_block(x, check_positive_int("dense_units", dense_units, minimum=0), dropout, "dense")
