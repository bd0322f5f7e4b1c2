"""The Temporal Fusion Transformer (Lim et al., 2021) for one-step-ahead forecasts.

Inputs (named; the window keeps the usual name so price windows feed it as they are):

- ``inputs``: ``(time, features)`` observed past values (the window);
- ``known``: ``(time + 1, known_features)`` values known in advance, for every window step and the
  step being forecast (calendar features: in the price pipeline, hour and weekday as sin/cos);
  declared when ``known_features > 0``;
- ``static``: ``(1,)`` int32 id of the series (e.g. the symbol), declared when ``static_vocab > 0``.

Path: variable selection (past: observed + known; future: known) with the static context ->
LSTM encoder over the past, LSTM decoder over the future step, started from the encoder's
state (and the static context) -> gated skip -> static enrichment (GRN) -> ``num_layers`` of
interpretable multi-head attention with a causal mask + position-wise GRN (``ff_dim``) -> gated
skip over the attention stage -> the forecast step's features. Put a quantile head on it with
``task="quantile"`` (default quantiles 0.1, 0.5, 0.9). :func:`ml.training_pipeline.interpretation.interpret`
gives the variable-selection weights and the attention map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml.training_pipeline.common.arguments import check_attention_params, check_positive_int
from ml.training_pipeline.models.registry import (
    KNOWN_INPUT,
    ONE_STEP_PER_EXECUTION,
    STATIC_INPUT,
    TensorSpec,
    register_model,
)

CALENDAR_FEATURES = 4
"""sin/cos of the hour of day and of the day of week."""


def _preset(d_model, num_heads, ff_dim, num_layers, dropout, learning_rate, known=CALENDAR_FEATURES, static=0):
    return {"d_model": d_model, "num_heads": num_heads, "ff_dim": ff_dim, "num_layers": num_layers, "dropout": dropout,
            "known_features": known, "static_vocab": static, "learning_rate": learning_rate}


RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "tft": {
        "lightweight": _preset(48, 4, 192, 1, 0.1, 1e-3),
        "default": _preset(96, 8, 384, 2, 0.1, 1e-3),
        "deep": _preset(160, 8, 640, 3, 0.15, 5e-4),
        "tiny": _preset(8, 2, 16, 1, 0.1, 1e-3),
    }
}


def check_tft_params(params: Mapping[str, Any]) -> None:
    """Sizes checked before TensorFlow is imported."""
    check_attention_params(params)
    check_positive_int("known_features", params["known_features"], minimum=0)
    check_positive_int("static_vocab", params["static_vocab"], minimum=0)


def declare_tft_inputs(input_shape: tuple[int, ...], params: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """The observed window, then ``known`` (one step longer) and ``static`` when configured."""
    specs = [TensorSpec("inputs", tuple(input_shape), "float32")]
    if params["known_features"]:
        length = None if input_shape[0] is None else input_shape[0] + 1
        specs.append(TensorSpec(KNOWN_INPUT, (length, params["known_features"]), "float32"))
    if params["static_vocab"]:
        specs.append(TensorSpec(STATIC_INPUT, (1,), "int32", params["static_vocab"]))
    return tuple(specs)


@register_model(
    "tft",
    description="Temporal Fusion Transformer: variable selection, GRNs, LSTM encoder/decoder, interpretable "
                "causal attention; static, known-future and observed inputs; quantile-ready.",
    variants=RECOMMENDED_HYPERPARAMETERS["tft"],
    aliases=("temporal_fusion_transformer",),
    declare_inputs=declare_tft_inputs,
    check_params=check_tft_params,
    default_params=573_918,
    compile_settings=ONE_STEP_PER_EXECUTION,
)
def build_tft(inputs, *, d_model: int, num_heads: int, ff_dim: int, num_layers: int, dropout: float,
              known_features: int, static_vocab: int):
    """The TFT body; the task adds the head (``task="quantile"`` for quantiles).

    Args:
        inputs: ``inputs`` alone, or a dict with ``inputs``, ``known`` and ``static`` as declared.
        d_model: width of every hidden state (divisible by ``num_heads``).
        num_heads: attention heads.
        ff_dim: hidden width of the position-wise GRN after each attention layer.
        num_layers: attention layers.
        dropout: dropout in every GRN and gate.
        known_features: columns of the ``known`` input (0: no known input).
        static_vocab: number of series ids of the ``static`` input (0: no static input).

    Returns:
        The ``(batch, d_model)`` features of the forecast step.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> model = create_model("tft", input_shape=(60, 15), task="quantile")  # doctest: +SKIP
        >>> sorted(model.input)  # doctest: +SKIP
        ['inputs', 'known']
    """
    import keras

    from ml.training_pipeline.layers import (  # imports Keras: only when a model is built or loaded
        GateAddNorm,
        GatedResidualNetwork,
        InterpretableMultiHeadAttention,
        LastTimestep,
        TimeSlice,
        VariableSelection,
    )

    named = inputs if isinstance(inputs, Mapping) else {"inputs": inputs}
    observed, known, static = named["inputs"], named.get(KNOWN_INPUT), named.get(STATIC_INPUT)

    contexts: dict[str, Any] = {}
    if static is not None:
        s = keras.layers.Flatten(name="static_flat")(keras.layers.Embedding(static_vocab, d_model,
                                                                            name="static_embedding")(static))
        for role in ("selection", "enrichment", "state_h", "state_c"):
            contexts[role] = GatedResidualNetwork(d_model, dropout=dropout, name=f"static_context_{role}")(s)

    def with_context(x, role):
        return [x, contexts[role]] if contexts else x

    past = observed if known is None else keras.layers.Concatenate(name="past_variables")(
        [observed, TimeSlice(0, -1, name="known_past")(known)])
    past, _ = VariableSelection(d_model, dropout, name="past_selection")(with_context(past, "selection"))
    state = [contexts["state_h"], contexts["state_c"]] if contexts else None
    encoded, h, c = keras.layers.LSTM(d_model, return_sequences=True, return_state=True, name="encoder")(
        past, initial_state=state)
    if known is not None:
        future, _ = VariableSelection(d_model, dropout, name="future_selection")(
            with_context(TimeSlice(-1, None, name="known_future")(known), "selection"))
        decoded = keras.layers.LSTM(d_model, return_sequences=True, name="decoder")(future, initial_state=[h, c])
        lstm_out = keras.layers.Concatenate(axis=1, name="lstm_sequence")([encoded, decoded])
        selected = keras.layers.Concatenate(axis=1, name="selected_sequence")([past, future])
    else:
        lstm_out, selected = encoded, past
    temporal = GateAddNorm(dropout, name="lstm_gate")([lstm_out, selected])
    x = GatedResidualNetwork(d_model, dropout=dropout, name="static_enrichment")(with_context(temporal, "enrichment"))
    for i in range(num_layers):
        attended, _ = InterpretableMultiHeadAttention(num_heads, dropout, causal=True, name=f"attention{i}")(x)
        x = GateAddNorm(dropout, name=f"attention{i}_gate")([attended, x])
        x = GatedResidualNetwork(ff_dim, d_model, dropout, name=f"position_wise{i}")(x)
    x = GateAddNorm(dropout, name="output_gate")([x, temporal])
    return LastTimestep(name="forecast_step")(x)
