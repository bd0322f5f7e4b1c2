"""Recurrent-memory encoders that train in parallel: Mamba (selective state space) and xLSTM.

Both embed each step to ``d_model``, stack pre-norm residual blocks, normalise and read the last
step (their blocks are causal, so the last step has seen the whole window). Mamba blocks use the
Mamba-2 parallel scan (:mod:`ml.training_pipeline.layers.mamba`); xLSTM stacks mLSTM blocks (matrix
memory, parallel form) with sLSTM blocks (scalar memory, a true recurrence) at the positions
``slstm_at``. Both export to ONNX with a dynamic sequence length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ml.training_pipeline.common.arguments import check_positive_int, check_rate
from ml.training_pipeline.models.registry import ONE_STEP_PER_EXECUTION, register_model

RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "mamba": {
        "lightweight": {"d_model": 64, "num_layers": 2, "num_heads": 4, "d_state": 16, "expand": 2, "conv_width": 4,
                        "dropout": 0.1, "learning_rate": 1e-3},
        "default": {"d_model": 128, "num_layers": 3, "num_heads": 8, "d_state": 16, "expand": 2, "conv_width": 4,
                    "dropout": 0.1, "learning_rate": 1e-3},
        "deep": {"d_model": 192, "num_layers": 6, "num_heads": 8, "d_state": 32, "expand": 2, "conv_width": 4,
                 "dropout": 0.15, "learning_rate": 5e-4},
        "tiny": {"d_model": 8, "num_layers": 1, "num_heads": 2, "d_state": 4, "expand": 2, "conv_width": 3,
                 "dropout": 0.1, "learning_rate": 1e-3},
    },
    "xlstm": {
        "lightweight": {"d_model": 64, "num_layers": 2, "num_heads": 4, "slstm_at": (1,), "conv_width": 4,
                        "dropout": 0.1, "learning_rate": 1e-3},
        "default": {"d_model": 128, "num_layers": 3, "num_heads": 4, "slstm_at": (1,), "conv_width": 4,
                    "dropout": 0.1, "learning_rate": 1e-3},
        "deep": {"d_model": 192, "num_layers": 6, "num_heads": 4, "slstm_at": (1, 4), "conv_width": 4,
                 "dropout": 0.15, "learning_rate": 5e-4},
        "tiny": {"d_model": 8, "num_layers": 2, "num_heads": 2, "slstm_at": (1,), "conv_width": 3,
                 "dropout": 0.1, "learning_rate": 1e-3},
    },
}


def check_mamba_params(params: Mapping[str, Any]) -> None:
    """Sizes checked before TensorFlow is imported.

    Example:
        >>> check_mamba_params({"d_model": 8, "num_layers": 1, "num_heads": 3, "d_state": 4, "expand": 2,
        ...                     "conv_width": 3, "dropout": 0.0})
        Traceback (most recent call last):
        ...
        ValueError: expand * d_model must be divisible by num_heads. Received: expand=2, d_model=8, num_heads=3
    """
    for name in ("d_model", "num_layers", "num_heads", "d_state", "expand", "conv_width"):
        check_positive_int(name, params[name])
    check_rate("dropout", params["dropout"])
    if params["expand"] * params["d_model"] % params["num_heads"]:
        raise ValueError(f"expand * d_model must be divisible by num_heads. Received: expand={params['expand']}, "
                         f"d_model={params['d_model']}, num_heads={params['num_heads']}")


def check_xlstm_params(params: Mapping[str, Any]) -> None:
    """Sizes checked before TensorFlow is imported; ``slstm_at`` must name existing block positions."""
    for name in ("d_model", "num_layers", "num_heads", "conv_width"):
        check_positive_int(name, params[name])
    check_rate("dropout", params["dropout"])
    if 2 * params["d_model"] % params["num_heads"]:
        raise ValueError(f"2 * d_model must be divisible by num_heads. Received: d_model={params['d_model']}, "
                         f"num_heads={params['num_heads']}")
    positions = params["slstm_at"]
    if not isinstance(positions, Sequence) or isinstance(positions, str) or \
            any(not isinstance(p, int) or isinstance(p, bool) or not 0 <= p < params["num_layers"] for p in positions):
        raise ValueError(f"slstm_at must list block positions in [0, {params['num_layers'] - 1}]. "
                         f"Received: slstm_at={positions!r}")


def _embed_and_read(inputs, d_model: int, blocks) -> Any:
    import keras

    from ml.training_pipeline.layers import LastTimestep  # imports Keras: only when a model is built or loaded

    x = keras.layers.Dense(d_model, name="embedding")(inputs)
    for block in blocks:
        x = block(x)
    x = keras.layers.LayerNormalization(name="final_norm")(x)
    return LastTimestep(name="last_timestep")(x)


@register_model(
    "mamba",
    description="Mamba encoder: selective state-space blocks (input-dependent step, B and C; gated branch; "
                "causal depthwise conv) in Mamba-2's parallel form.",
    variants=RECOMMENDED_HYPERPARAMETERS["mamba"],
    check_params=check_mamba_params,
    default_params=319_425,
    compile_settings=ONE_STEP_PER_EXECUTION,
)
def build_mamba(inputs, *, d_model: int, num_layers: int, num_heads: int, d_state: int, expand: int,
                conv_width: int, dropout: float):
    """Stacked Mamba blocks read at the last step.

    Args:
        inputs: a ``(batch, time, features)`` window.
        d_model: width of the residual stream.
        num_layers: Mamba blocks.
        num_heads: SSM heads (``expand * d_model`` divisible by it).
        d_state: state size per head channel.
        expand: inner width factor.
        conv_width: causal convolution width.
        dropout: dropout on each block's output branch.

    Returns:
        The ``(batch, d_model)`` last-step features.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("mamba", input_shape=(60, 15), variant="lightweight")  # doctest: +SKIP
    """
    from ml.training_pipeline.layers import MambaBlock  # imports Keras: only when a model is built or loaded

    return _embed_and_read(inputs, d_model, [
        MambaBlock(expand, num_heads, d_state, conv_width, dropout, name=f"mamba{i}") for i in range(num_layers)])


@register_model(
    "xlstm",
    description="xLSTM encoder: mLSTM blocks (matrix memory, parallel form) and sLSTM blocks (exponential gating, "
                "stabiliser state) at slstm_at.",
    variants=RECOMMENDED_HYPERPARAMETERS["xlstm"],
    check_params=check_xlstm_params,
    default_params=818_279,
    compile_settings=ONE_STEP_PER_EXECUTION,
)
def build_xlstm(inputs, *, d_model: int, num_layers: int, num_heads: int, slstm_at: Sequence[int], conv_width: int,
                dropout: float):
    """Stacked xLSTM blocks read at the last step.

    Args:
        inputs: a ``(batch, time, features)`` window.
        d_model: width of the residual stream.
        num_layers: blocks in all.
        num_heads: mLSTM memory heads (``2 * d_model`` divisible by it).
        slstm_at: positions of the sLSTM blocks (the others are mLSTM).
        conv_width: causal convolution width of the mLSTM blocks.
        dropout: dropout on each block's output branch.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("xlstm", input_shape=(60, 15), slstm_at=(0, 2))  # doctest: +SKIP
    """
    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        MLSTMBlock,
        SLSTMBlock,
    )

    blocks = [(SLSTMBlock if i in set(slstm_at) else MLSTMBlock)(num_heads, conv_width, dropout, name=f"xlstm{i}")
              for i in range(num_layers)]
    return _embed_and_read(inputs, d_model, blocks)
