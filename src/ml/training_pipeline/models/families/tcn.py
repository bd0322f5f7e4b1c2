"""Temporal convolutional networks: dilated causal convolutions with residual blocks."""

from __future__ import annotations

from ml.training_pipeline.common.arguments import check_positive_int, check_rate
from ml.training_pipeline.models.registry import register_model

# Convolutions converge fast and then oscillate: give the LR schedule half the patience.
_TCN_CALLBACKS = {"lr_patience_fraction": 1 / 2, "lr_factor": 0.5, "min_lr": 1e-6}

# bf16 arithmetic trained the TCNs 1.12-1.24x faster on a CPU with AVX512_BF16, with the same validation loss
# (benchmarks/train_speed.py, benchmarks/batch_defaults.py --precision); precision="auto" uses it on such CPUs
_TCN_PRECISION = "mixed_bfloat16"

CONVS_PER_BLOCK = 2
"""Causal convolutions in each residual block (as in Bai et al., 2018)."""

_TCN_VARIANTS = {
    "lightweight": {"filters": 32, "num_levels": 4, "kernel_size": 3, "dilation_base": 2,
                    "dense_units": 0, "dropout": 0.05, "learning_rate": 2e-3},
    "default": {"filters": 64, "num_levels": 5, "kernel_size": 3, "dilation_base": 2,
                "dense_units": 0, "dropout": 0.1, "learning_rate": 1e-3},
    "deep": {"filters": 128, "num_levels": 6, "kernel_size": 3, "dilation_base": 2,
             "dense_units": 64, "dropout": 0.15, "learning_rate": 5e-4},
    "tiny": {"filters": 4, "num_levels": 2, "kernel_size": 3, "dilation_base": 2,
             "dense_units": 4, "dropout": 0.1, "learning_rate": 1e-3},
}
RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict]] = {
    "tcn": _TCN_VARIANTS,
    "tcn_attention": {
        name: {**params, "attention_units": params["filters"]} for name, params in _TCN_VARIANTS.items()
    },
}


GUIDE_NAMES = {"num_filters": "filters", "num_layers": "num_levels"}
"""The user's guide's names for the TCN hyperparameters, accepted by ``create_model``."""


def calculate_receptive_field(
    kernel_size: int,
    num_layers: int,
    dilation_base: int = 2,
    convs_per_block: int = CONVS_PER_BLOCK,
) -> int:
    """Number of input steps that can influence the last output of the TCN built here.

    Level ``i`` has dilation ``dilation_base ** i`` and ``convs_per_block`` causal
    convolutions, each of which adds ``(kernel_size - 1) * dilation`` steps, so the field is
    ``1 + convs_per_block * (kernel_size - 1) * sum(dilation_base ** i for i < num_layers)``.

    Args:
        kernel_size: convolution width.
        num_layers: number of residual levels (``num_levels`` of ``create_model("tcn")``).
        dilation_base: growth factor of the dilation per level.
        convs_per_block: causal convolutions per level.

    Returns:
        The receptive field in time steps.

    Example:
        >>> calculate_receptive_field(kernel_size=3, num_layers=5)
        125
    """
    check_positive_int("kernel_size", kernel_size)
    check_positive_int("num_layers", num_layers)
    check_positive_int("dilation_base", dilation_base)
    check_positive_int("convs_per_block", convs_per_block)
    span = sum(dilation_base**i for i in range(num_layers))
    return 1 + convs_per_block * (kernel_size - 1) * span


def _tcn_stack(inputs, filters, num_levels, kernel_size, dilation_base, dropout):
    from ml.training_pipeline.layers import residual_tcn_block  # imports Keras: only when a model is built or loaded

    check_positive_int("filters", filters)
    check_positive_int("num_levels", num_levels)
    check_positive_int("kernel_size", kernel_size)
    check_positive_int("dilation_base", dilation_base)
    dropout = check_rate("dropout", dropout)
    x = inputs
    for level in range(num_levels):
        x = residual_tcn_block(
            x,
            filters=filters,
            kernel_size=kernel_size,
            dilation_rate=dilation_base**level,
            dropout=dropout,
            convs_per_block=CONVS_PER_BLOCK,
            name=f"tcn_block{level}",
        )
    return x, dropout


_TCN_RESIDUAL = {"learning_rate": 1e-4, "dropout": 0.3}
"""Learning the correction to a baseline (volatility's extended HAR), the TCN at its defaults (lr 1e-3, dropout 0.1)
overfits it: 5 walk-forward folds, 3 seeds, skill over HAR-RV +0.019 (worst fold -0.064). Dropout 0.3 with lr 3e-4:
+0.0501 +- 0.0023 (worst fold +0.027); with lr 1e-4: +0.0502 +- 0.0009, above the calendar HAR in every fold.
benchmarks/forecast_recipe.py, docs/forecasting.md."""


@register_model(
    "tcn",
    description="Temporal convolutional network: residual dilated causal Conv1D blocks, head on the last step.",
    variants=_TCN_VARIANTS,
    callback_settings=_TCN_CALLBACKS,
    param_aliases=GUIDE_NAMES,
    training_precision=_TCN_PRECISION,
    residual_params=_TCN_RESIDUAL,
)
def build_tcn(inputs, *, filters: int, num_levels: int, kernel_size: int, dilation_base: int,
              dense_units: int, dropout: float):
    """TCN whose head reads the last time step, which sees ``calculate_receptive_field(...)`` steps.

    Args:
        inputs: a ``(batch, time, features)`` Keras tensor.
        filters: channels of every convolution.
        num_levels: residual blocks; level ``i`` has dilation ``dilation_base ** i``.
        kernel_size: convolution width.
        dilation_base: dilation growth per level.
        dense_units: hidden Dense layer before the head (0 for none).
        dropout: spatial dropout rate in the blocks.

    Returns:
        The ``(batch, filters)`` feature tensor (or ``dense_units`` wide).

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("tcn", input_shape=(60, 15), variant="lightweight")
    """
    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        LastTimestep,
        dense_block,
    )

    x, dropout = _tcn_stack(inputs, filters, num_levels, kernel_size, dilation_base, dropout)
    x = LastTimestep(name="last_timestep")(x)
    return dense_block(x, check_positive_int("dense_units", dense_units, minimum=0), dropout, "dense")


@register_model(
    "tcn_attention",
    description="TCN whose per-step outputs are pooled by additive temporal attention.",
    variants=RECOMMENDED_HYPERPARAMETERS["tcn_attention"],
    family="tcn_attention",
    aliases=("tcn-attention", "tcn_attn"),
    callback_settings=_TCN_CALLBACKS,
    param_aliases=GUIDE_NAMES,
    training_precision=_TCN_PRECISION,
)
def build_tcn_attention(inputs, *, filters: int, num_levels: int, kernel_size: int, dilation_base: int,
                        attention_units: int, dense_units: int, dropout: float):
    """TCN followed by temporal attention over every (causal) output step.

    Args:
        inputs: a ``(batch, time, features)`` Keras tensor.
        filters: channels of every convolution.
        num_levels: residual blocks.
        kernel_size: convolution width.
        dilation_base: dilation growth per level.
        attention_units: size of the attention scoring projection.
        dense_units: hidden Dense layer before the head (0 for none).
        dropout: spatial dropout rate.

    Returns:
        The feature tensor.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("tcn_attention", input_shape=(60, 15), attention_units=16)
    """
    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        TemporalAttention,
        dense_block,
    )

    x, dropout = _tcn_stack(inputs, filters, num_levels, kernel_size, dilation_base, dropout)
    x = TemporalAttention(check_positive_int("attention_units", attention_units), name="temporal_attention")(x)
    return dense_block(x, check_positive_int("dense_units", dense_units, minimum=0), dropout, "dense")
