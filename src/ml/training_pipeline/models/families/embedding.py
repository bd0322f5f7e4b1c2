"""A float window plus integer ids: an LSTM summary of the window joined with learned id embeddings.

The ids are per-sample categories (which symbol, which group, which host) that a plain
window model cannot tell apart; one model can then serve several of them. This is the
smallest model with two named inputs of different dtypes, and the template for richer
multi-input models (static, known-future and observed covariates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml.training_pipeline.common.arguments import check_positive_int, check_rate, check_units
from ml.training_pipeline.models.registry import TensorSpec, register_model

WINDOW, IDS = "window", "ids"

RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "embedding_lstm": {
        "default": {"vocab_size": 16, "num_ids": 1, "embedding_dim": 8, "units": (64,), "dense_units": 32,
                    "dropout": 0.1, "learning_rate": 1e-3},
        "tiny": {"vocab_size": 5, "num_ids": 2, "embedding_dim": 2, "units": (4,), "dense_units": 4,
                 "dropout": 0.1, "learning_rate": 1e-3},
    }
}


def declare_window_and_ids(input_shape: tuple[int, ...], params: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """``window``: the ``(timesteps, features)`` floats; ``ids``: ``num_ids`` int32 ids in ``[0, vocab_size)``."""
    num_ids = check_positive_int("num_ids", params["num_ids"])
    vocab_size = check_positive_int("vocab_size", params["vocab_size"], minimum=2)
    return (TensorSpec(WINDOW, tuple(input_shape), "float32"), TensorSpec(IDS, (num_ids,), "int32", vocab_size))


@register_model(
    "embedding_lstm",
    description="LSTM over a float window, joined with learned embeddings of per-sample int ids (inputs: window, ids).",
    variants=RECOMMENDED_HYPERPARAMETERS["embedding_lstm"],
    declare_inputs=declare_window_and_ids,
)
def build_embedding_lstm(inputs, *, vocab_size: int, num_ids: int, embedding_dim: int, units, dense_units: int,
                         dropout: float):
    """Window summary by stacked LSTM, ids by a shared ``Embedding``, both concatenated into a Dense block.

    Args:
        inputs: ``{"window": (batch, time, features) float32, "ids": (batch, num_ids) int32}``.
        vocab_size: distinct id values (ids lie in ``[0, vocab_size)``).
        num_ids: id columns per sample (they share one embedding table).
        embedding_dim: width of each id's embedding.
        units: LSTM sizes.
        dense_units: hidden Dense layer after the join (0 for none).
        dropout: dropout rate.

    Returns:
        The feature tensor.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("embedding_lstm", input_shape=(30, 4), vocab_size=10, num_ids=1)  # doctest: +SKIP
        >>> model.predict({"window": x, "ids": ids})  # doctest: +SKIP
    """
    import keras

    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        dense_block,
        stacked_lstm,
    )

    dropout = check_rate("dropout", dropout)
    window = stacked_lstm(inputs[WINDOW], check_units("units", units), dropout, False, "lstm")
    ids = keras.layers.Embedding(vocab_size, check_positive_int("embedding_dim", embedding_dim), name="id_embedding")(
        inputs[IDS])
    ids = keras.layers.Flatten(name="id_flatten")(ids)
    x = keras.layers.Concatenate(name="join")([window, ids])
    return dense_block(x, check_positive_int("dense_units", dense_units, minimum=0), dropout, "dense")
