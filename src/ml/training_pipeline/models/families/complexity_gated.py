"""Complexity-gated regression: a learned gate mixes a standard and a higher-capacity pathway.

Built for the m-height problem (:mod:`ml.examples.mheight`), where a sample is a code
``(n, k, m, P)``: some ``(k, m)`` groups are easy (log2-MSE ~0.1) and some hard (~1.4). The gate
reads the ``(k, m)`` embeddings and decides per sample how much of the attention pathway (self-
attention over the rows of ``P``) to add to the standard one (an MLP on the flattened ``P``), so
easy groups do not pay for, or overfit with, capacity they do not need.

Inputs (named):
    n, k, m: ``(1,)`` int32 ids (``< max_n + 1``), embedded.
    P: ``(max_k, max_cols)`` float32, the ``k x (n-k)`` matrix zero-padded (padded rows are masked).

Pair it with ``task="positive", minimum=1.0``: the head is then ``2 ** softplus(z)`` (log2-space
softplus, so the prediction is never below 1, as an m-height never is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml.training_pipeline.common.arguments import check_positive_int, check_rate
from ml.training_pipeline.models.registry import TensorSpec, register_model

P_INPUT, ID_INPUTS = "P", ("n", "k", "m")

RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "complexity_gated": {
        "default": {"max_n": 16, "embedding_dim": 8, "units": 128, "d_model": 64, "num_heads": 4, "ff_dim": 128,
                    "attention_blocks": 2, "head_blocks": 2, "dropout": 0.1, "input_noise": 0.0,
                    "learning_rate": 1e-3},
        "lightweight": {"max_n": 16, "embedding_dim": 4, "units": 64, "d_model": 32, "num_heads": 2, "ff_dim": 64,
                        "attention_blocks": 1, "head_blocks": 1, "dropout": 0.1, "input_noise": 0.0,
                        "learning_rate": 1e-3},
        "regularized": {"max_n": 16, "embedding_dim": 8, "units": 128, "d_model": 64, "num_heads": 4, "ff_dim": 128,
                        "attention_blocks": 2, "head_blocks": 2, "dropout": 0.3, "input_noise": 0.05,
                        "learning_rate": 1e-3},
        "tiny": {"max_n": 16, "embedding_dim": 2, "units": 8, "d_model": 8, "num_heads": 2, "ff_dim": 8,
                 "attention_blocks": 1, "head_blocks": 1, "dropout": 0.1, "input_noise": 0.05, "learning_rate": 1e-3},
    }
}


def declare_code_inputs(input_shape: tuple[int, ...], params: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """``P`` with the given ``(max_k, max_cols)`` shape first, then the ``n``, ``k``, ``m`` ids."""
    vocab = check_positive_int("max_n", params["max_n"], minimum=2) + 1
    return (TensorSpec(P_INPUT, tuple(input_shape), "float32"),
            *(TensorSpec(name, (1,), "int32", vocab) for name in ID_INPUTS))


@register_model(
    "complexity_gated",
    description="Gate from (k, m) embeddings mixing an MLP and a row-attention pathway over P; residual MLP head "
                "(inputs: n, k, m ids and a padded P; pair with task='positive', minimum=1).",
    variants=RECOMMENDED_HYPERPARAMETERS["complexity_gated"],
    declare_inputs=declare_code_inputs,
)
def build_complexity_gated(inputs, *, max_n: int, embedding_dim: int, units: int, d_model: int, num_heads: int,
                           ff_dim: int, attention_blocks: int, head_blocks: int, dropout: float, input_noise: float):
    """The gated two-pathway body; the task adds the output head.

    Args:
        inputs: ``{"P": (batch, max_k, max_cols), "n"/"k"/"m": (batch, 1) int32}``.
        max_n: largest id value of ``n``, ``k`` and ``m`` (embedding tables have ``max_n + 1`` rows).
        embedding_dim: width of each id embedding.
        units: width of the standard pathway, the mixed representation and the head.
        d_model, num_heads, ff_dim, attention_blocks: the attention pathway (see ``RowSetAttention``).
        head_blocks: residual MLP blocks after the mix.
        dropout: dropout rate throughout.
        input_noise: training-only Gaussian noise on ``P``, as a fraction of each entry's batch std (0: off).

    Returns:
        The feature tensor ``(batch, units)``.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("complexity_gated", {"P": (6, 5)}, task="positive", minimum=1.0)  # doctest: +SKIP
        >>> model.predict({"n": n, "k": k, "m": m, "P": P})  # doctest: +SKIP
    """
    import keras

    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        FeatureNoise,
        GatedMix,
        RowSetAttention,
    )

    units = check_positive_int("units", units)
    dropout = check_rate("dropout", dropout)
    embed = {name: keras.layers.Flatten(name=f"{name}_flat")(
        keras.layers.Embedding(check_positive_int("max_n", max_n, minimum=2) + 1,
                               check_positive_int("embedding_dim", embedding_dim), name=f"{name}_embedding")(inputs[name]))
        for name in ID_INPUTS}
    P = inputs[P_INPUT]
    if input_noise:
        P = FeatureNoise(check_rate("input_noise", input_noise), name="P_noise")(P)
    group = keras.layers.Concatenate(name="group_context")([embed["k"], embed["m"]])
    codes = keras.layers.Concatenate(name="code_context")([embed["n"], group])

    gate = keras.layers.Dense(units // 2 or 1, activation="relu", name="gate_hidden")(group)
    gate = keras.layers.Dense(1, activation="sigmoid", name="gate")(gate)

    standard = keras.layers.Concatenate(name="standard_in")([keras.layers.Flatten(name="P_flat")(P), codes])
    for i in range(2):
        standard = keras.layers.Dense(units, activation="relu", name=f"standard_{i}")(standard)
        standard = keras.layers.Dropout(dropout, name=f"standard_{i}_dropout")(standard)

    rows = RowSetAttention(check_positive_int("d_model", d_model), check_positive_int("num_heads", num_heads),
                           check_positive_int("ff_dim", ff_dim), check_positive_int("attention_blocks", attention_blocks),
                           dropout, max_rows=max(16, P.shape[1]), name="row_attention")(P)
    high = keras.layers.Concatenate(name="high_in")([rows, codes])
    high = keras.layers.Dense(units, activation="relu", name="high_0")(high)
    high = keras.layers.Dropout(dropout, name="high_0_dropout")(high)
    high = keras.layers.Dense(units, activation="relu", name="high_1")(high)

    x = GatedMix(name="gated_mix")([gate, high, standard])
    for i in range(check_positive_int("head_blocks", head_blocks, minimum=0)):
        h = keras.layers.LayerNormalization(name=f"head_{i}_norm")(x)
        h = keras.layers.Dense(units, activation="relu", name=f"head_{i}_dense")(h)
        h = keras.layers.Dropout(dropout, name=f"head_{i}_dropout")(h)
        h = keras.layers.Dense(units, name=f"head_{i}_out")(h)
        x = keras.layers.Add(name=f"head_{i}_residual")([x, h])
    return x
