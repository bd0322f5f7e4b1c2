"""Transformer encoders for windows: the plain encoder, an MC-dropout one and a Bayesian one.

All three share the same shape: a linear projection of each step to ``d_model``, sinusoidal
positions, pre-norm encoder blocks (attention and a feed-forward network, each in a residual
branch), a final norm and a mean over the (unpadded) steps. They differ in what makes them
uncertain:

- ``transformer``: deterministic; attention dropout inside ``MultiHeadAttention``.
- ``mcdropout_transformer``: more dropout, all of it in its own ``Dropout`` layers (around
  attention, in the feed-forward network, on the embeddings) so sampling with ``training=True``
  (``predict_with_uncertainty``) draws masks from every one of them; ``MultiHeadAttention``'s
  internal dropout is off (it uses stateless random ops that do not export).
- ``bayesian_transformer``: Gaussian posteriors on every attention and feed-forward projection
  and on the step embedding (``BayesianDense``, ``BayesianSelfAttention``), KL term times
  ``kl_weight`` as a model loss.

With ``padding_mask=True`` the model declares a second input ``padding_mask`` (bool,
``(time,)``, True on real steps): padded steps are neither attended to nor pooled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml.training_pipeline.common.arguments import check_attention_params
from ml.training_pipeline.common.tensors import DEFAULT_MAX_LENGTH, PADDING_MASK
from ml.training_pipeline.models.registry import ONE_STEP_PER_EXECUTION, Capabilities, TensorSpec, register_model


def _sizes(d_model, num_heads, ff_dim, num_layers, dropout, final_norm=True, **extra):
    return {"d_model": d_model, "num_heads": num_heads, "ff_dim": ff_dim, "num_layers": num_layers,
            "dropout": dropout, "max_length": DEFAULT_MAX_LENGTH, "padding_mask": False, "final_norm": final_norm,
            **extra}


# The sampling models leave the residual stream unnormalised before the head: a final LayerNorm makes the
# head blind to the stream's scale, so inputs far from the training data (large activations) would get the
# same, or a smaller, spread than familiar ones. Without it, the sampled noise grows with the distance.
_SAMPLING = {"final_norm": False}


RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "transformer": {
        "lightweight": _sizes(64, 4, 256, 2, 0.1, learning_rate=1e-3),
        "default": _sizes(128, 8, 512, 3, 0.1, learning_rate=5e-4),
        "deep": _sizes(192, 8, 768, 6, 0.15, learning_rate=3e-4),
        "tiny": _sizes(8, 2, 16, 1, 0.1, learning_rate=1e-3),
    },
    "mcdropout_transformer": {
        "lightweight": _sizes(64, 4, 256, 2, 0.2, learning_rate=1e-3, **_SAMPLING),
        "default": _sizes(128, 8, 512, 2, 0.2, learning_rate=5e-4, **_SAMPLING),
        "deep": _sizes(192, 8, 768, 4, 0.25, learning_rate=3e-4, **_SAMPLING),
        "tiny": _sizes(8, 2, 16, 1, 0.2, learning_rate=1e-3, **_SAMPLING),
    },
    "bayesian_transformer": {
        "lightweight": _sizes(64, 4, 256, 1, 0.05, prior_mu=0.0, prior_sigma=1.0, kl_weight=1e-4, learning_rate=1e-3, **_SAMPLING),
        "default": _sizes(96, 8, 384, 2, 0.05, prior_mu=0.0, prior_sigma=1.0, kl_weight=1e-4, learning_rate=5e-4, **_SAMPLING),
        "deep": _sizes(128, 8, 512, 4, 0.05, prior_mu=0.0, prior_sigma=1.0, kl_weight=1e-4, learning_rate=3e-4, **_SAMPLING),
        "tiny": _sizes(8, 2, 16, 1, 0.05, prior_mu=0.0, prior_sigma=1.0, kl_weight=1e-4, learning_rate=1e-3, **_SAMPLING),
    },
}


def declare_window_inputs(input_shape: tuple[int, ...], params: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """The window, plus a boolean ``padding_mask`` over its steps when ``padding_mask=True``."""
    if input_shape[0] > params["max_length"]:
        raise ValueError(f"sequence length {input_shape[0]} is longer than the positional limit "
                         f"max_length={params['max_length']}. Received: input_shape={tuple(input_shape)}")
    window = TensorSpec("inputs", tuple(input_shape), "float32")
    return (window, TensorSpec(PADDING_MASK, (input_shape[0],), "bool")) if params["padding_mask"] else (window,)


_COMMON = "sinusoidal positions, pre-norm blocks, optional padding mask, mean pooling"
# bf16 arithmetic trained the encoder 1.20-1.28x faster on a CPU with AVX512_BF16 with the same validation loss
# (0.54321 vs 0.54317; benchmarks/train_speed.py, benchmarks/batch_defaults.py --precision). The MC-dropout one
# ended 0.47% worse on validation in bf16 and the Bayesian layers do not run in it: both stay float32.
_ENCODER_PRECISION = "mixed_bfloat16"


@register_model(
    "transformer",
    description=f"Transformer encoder: {_COMMON}.",
    variants=RECOMMENDED_HYPERPARAMETERS["transformer"],
    declare_inputs=declare_window_inputs,
    capabilities=Capabilities(supports_masks=True),
    check_params=check_attention_params,
    default_params=597_249,
    training_precision=_ENCODER_PRECISION,
    compile_settings=ONE_STEP_PER_EXECUTION,
)
def build_transformer(inputs, *, d_model: int, num_heads: int, ff_dim: int, num_layers: int, dropout: float,
                      max_length: int, padding_mask: bool, final_norm: bool):
    """Transformer encoder over a window.

    Args:
        inputs: the ``(batch, time, features)`` window, or ``{"inputs", "padding_mask"}``.
        d_model: token width (divisible by ``num_heads``).
        num_heads: attention heads.
        ff_dim: feed-forward width.
        num_layers: encoder blocks.
        dropout: dropout in the residual branches and inside attention.
        max_length: the positional limit (longer windows are refused).
        padding_mask: whether the model takes a ``padding_mask`` input.
        final_norm: LayerNorm before pooling (off for the sampling models, see ``_SAMPLING``).

    Returns:
        The ``(batch, d_model)`` pooled encoding.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("transformer", input_shape=(60, 15), variant="lightweight")  # doctest: +SKIP
    """
    from ml.training_pipeline.layers.transformer_encoder import (  # imports Keras: only when a model is built
        keras_self_attention,
        plain_dense,
        transformer_encoder,
    )

    return transformer_encoder(inputs, d_model=d_model, num_heads=num_heads, ff_dim=ff_dim,
                               num_layers=num_layers, dropout=dropout, max_length=max_length, final_norm=final_norm,
                    attention=keras_self_attention(num_heads, d_model, dropout), dense=plain_dense)


@register_model(
    "mcdropout_transformer",
    description=f"Transformer encoder with Monte-Carlo dropout for uncertainty (own dropout layers): {_COMMON}.",
    variants=RECOMMENDED_HYPERPARAMETERS["mcdropout_transformer"],
    family="mcdropout_transformer",
    aliases=("mc_dropout_transformer", "mc_transformer"),
    declare_inputs=declare_window_inputs,
    capabilities=Capabilities(supports_masks=True, samples=True, samples_per_row=True),
    check_params=check_attention_params,
    default_params=398_721,
    compile_settings=ONE_STEP_PER_EXECUTION,
)
def build_mcdropout_transformer(inputs, *, d_model: int, num_heads: int, ff_dim: int, num_layers: int,
                                dropout: float, max_length: int, padding_mask: bool, final_norm: bool):
    """Transformer encoder whose dropout layers are sampled by ``predict_with_uncertainty``.

    Arguments as for ``transformer``; ``dropout`` is applied by ``Dropout`` layers only.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> from ml.training_pipeline.uncertainty import predict_with_uncertainty
        >>> model = create_model("mcdropout_transformer", input_shape=(60, 15))  # doctest: +SKIP
        >>> predict_with_uncertainty(model, x, n_samples=50).std  # doctest: +SKIP
    """
    from ml.training_pipeline.layers.transformer_encoder import (  # imports Keras: only when a model is built
        keras_self_attention,
        plain_dense,
        transformer_encoder,
    )

    return transformer_encoder(inputs, d_model=d_model, num_heads=num_heads, ff_dim=ff_dim,
                               num_layers=num_layers, dropout=dropout, max_length=max_length, final_norm=final_norm,
                    attention=keras_self_attention(num_heads, d_model, 0.0), dense=plain_dense)


@register_model(
    "bayesian_transformer",
    description="Bayesian transformer encoder: Gaussian posteriors on attention and feed-forward weights, "
                f"KL x kl_weight as a loss; {_COMMON}.",
    variants=RECOMMENDED_HYPERPARAMETERS["bayesian_transformer"],
    declare_inputs=declare_window_inputs,
    capabilities=Capabilities(supports_masks=True, samples=True, adds_losses=True),
    check_params=check_attention_params,
    default_params=449_761,
    compile_settings=ONE_STEP_PER_EXECUTION,
)
def build_bayesian_transformer(inputs, *, d_model: int, num_heads: int, ff_dim: int, num_layers: int, dropout: float,
                               max_length: int, padding_mask: bool, final_norm: bool, prior_mu: float,
                               prior_sigma: float, kl_weight: float):
    """Transformer encoder with weight distributions on every attention and feed-forward projection.

    Args:
        prior_mu, prior_sigma: the Gaussian prior of every Bayesian weight.
        kl_weight: factor of the KL term (fixed; 1e-4 by default).
        Others as for ``transformer``.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("bayesian_transformer", input_shape=(60, 15), kl_weight=1e-3)  # doctest: +SKIP
    """
    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        BayesianDense,
        BayesianSelfAttention,
    )
    from ml.training_pipeline.layers.transformer_encoder import encoder_activation, transformer_encoder

    prior = {"prior_mu": float(prior_mu), "prior_sigma": float(prior_sigma), "kl_weight": float(kl_weight)}

    def bayesian_dense(units, activation, name):
        return BayesianDense(units, activation=encoder_activation(activation), name=name, **prior)

    def bayesian_attention(h, mask, name):
        return BayesianSelfAttention(num_heads, name=name, **prior)(h, padding_mask=mask)[0]

    return transformer_encoder(inputs, d_model=d_model, num_heads=num_heads, ff_dim=ff_dim,
                               num_layers=num_layers, dropout=dropout, max_length=max_length, final_norm=final_norm,
                    attention=bayesian_attention, dense=bayesian_dense)
