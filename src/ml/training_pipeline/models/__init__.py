"""The public model factory.

Example:
    >>> from ml.training_pipeline.models import create_model, list_models
    >>> "tcn" in list_models()
    True
    >>> model = create_model("tcn", input_shape=(60, 15), variant="lightweight")  # doctest: +SKIP

Listing models and variants imports no TensorFlow; building one does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml.training_pipeline.models.families  # noqa: F401  (fills the registry)
from ml.training_pipeline.common.arguments import (
    check_input_shape,
    check_learning_rate,
    check_param_kinds,
    suggest,
    unknown_name_error,
)
from ml.training_pipeline.models.families.tcn import calculate_receptive_field
from ml.training_pipeline.models.interpretation import ATTENTION, interpret
from ml.training_pipeline.models.kinds import get_kind
from ml.training_pipeline.models.kinds.base import LinearOffset
from ml.training_pipeline.models.registry import GUIDE_VARIANTS, ModelSpec, TensorSpec, get_spec, registered_names
from ml.training_pipeline.models.tasks import TASKS, resolve_task

__all__ = [
    "AVAILABLE_MODELS",
    "LinearOffset",
    "MODEL_VARIANTS",
    "RECOMMENDED_HYPERPARAMETERS",
    "TASKS",
    "calculate_receptive_field",
    "create_model",
    "declared_inputs",
    "get_spec",
    "extract_attention_weights",
    "get_model_callbacks",
    "list_models",
    "resolve_params",
]

def _described(spec: ModelSpec) -> str:
    if spec.default_params is None:
        return spec.description
    return f"{spec.description} [default: {spec.default_params / 1000:.0f}K params at (60, 15)]"


AVAILABLE_MODELS: dict[str, str] = {name: _described(get_spec(name)) for name in registered_names()}
"""Model name -> one-line description (with the default preset's parameter count where the family states it)."""

MODEL_VARIANTS: tuple[str, ...] = GUIDE_VARIANTS
"""The guide's size names (lightweight, default, deep); every model also has ``tiny``, some have more."""

RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    get_spec(name).family: {variant: dict(params) for variant, params in get_spec(name).variants.items()}
    for name in registered_names()
}
"""Family -> preset -> hyperparameters, as the families registered them (a copy: edit kwargs, not this)."""

# Arguments that belong to the task head, not the architecture.
_TASK_KWARGS = ("output_dim", "num_classes", "quantiles", "minimum")
# Accepted by every model for the user's guide and atb's pipeline, which pass it to any model type. atb's own
# CNN-LSTM documents it as "unused, for compatibility": sentiment features arrive as columns of the window,
# so no model needs a separate branch. It is checked (a bool) and otherwise ignored.
_COMPATIBILITY_KWARGS = ("has_sentiment",)


def list_models() -> list[str]:
    """Canonical names of all registered models, sorted.

    Example:
        >>> list_models()[:3]
        ['attention_lstm', 'bayesian_transformer', 'cnn_lstm']
    """
    return registered_names()


def resolve_params(spec: ModelSpec, variant: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Merges preset values with user kwargs (the user wins); rejects unknown names and presets."""
    if not isinstance(variant, str) or variant.lower() not in spec.variants:
        raise unknown_name_error("variant", variant, spec.variants)
    params = dict(spec.variants[variant.lower()])
    kwargs = _rename_aliases(spec, kwargs)
    accepted = set(params)
    unknown = sorted(set(kwargs) - accepted - set(_TASK_KWARGS) - set(_COMPATIBILITY_KWARGS))
    if unknown:
        allowed = sorted(accepted | set(_TASK_KWARGS) | set(spec.param_aliases))
        raise ValueError(
            f"Unknown keyword argument {unknown[0]!r} for model_type={spec.name!r}.{suggest(unknown[0], allowed)} "
            f"Accepted: {', '.join(allowed)}. Received: {', '.join(unknown)}"
        )
    if not isinstance(kwargs.get("has_sentiment", False), bool):
        raise ValueError(f"has_sentiment must be True or False. Received: has_sentiment={kwargs['has_sentiment']!r}")
    given = {k: v for k, v in kwargs.items() if k not in _TASK_KWARGS and k not in _COMPATIBILITY_KWARGS}
    check_param_kinds(spec.name, params, given)
    params.update(given)
    if "learning_rate" in params:
        params["learning_rate"] = check_learning_rate(params["learning_rate"])
    if spec.check_params is not None:
        spec.check_params(params)
    return params


def _rename_aliases(spec: ModelSpec, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The guide's hyperparameter names (``num_filters``...) under the builder's names; both at once is refused."""
    renamed = dict(kwargs)
    for alias, name in spec.param_aliases.items():
        if alias in renamed:
            if name in renamed:
                raise ValueError(f"{alias!r} and {name!r} name the same hyperparameter of model_type={spec.name!r}; "
                                 f"give one. Received: {alias}={renamed[alias]!r}, {name}={renamed[name]!r}")
            renamed[name] = renamed.pop(alias)
    return renamed


def _declare(spec: ModelSpec, input_shape: Any, params: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """The model's inputs; ``input_shape`` is the primary input's shape or a ``{name: shape}`` dict."""
    given = dict(input_shape) if isinstance(input_shape, Mapping) else None
    if given is not None:
        probe = spec.declare_inputs((1,) * spec.shape_ndim[1], params)  # names only
        primary = probe[0].name
        if primary not in given:
            raise ValueError(f"input_shape must give the shape of {primary!r} for model_type={spec.name!r}. "
                             f"Accepted keys: {', '.join(s.name for s in probe)}. Received: {', '.join(map(str, given))}")
        input_shape = given[primary]
    shape = check_input_shape(input_shape, *spec.shape_ndim)
    declared = spec.declare_inputs(shape, params)
    if given is not None:
        names = {s.name: s for s in declared}
        for name, value in given.items():
            if name not in names:
                raise ValueError(f"input_shape names an input model_type={spec.name!r} does not declare: {name!r}. "
                                 f"Accepted: {', '.join(names)}. Received: {', '.join(map(str, given))}")
            if tuple(value) != tuple(names[name].shape):
                raise ValueError(f"input {name!r} of model_type={spec.name!r} has shape {tuple(names[name].shape)} "
                                 f"with these hyperparameters. Received: input_shape[{name!r}]={tuple(value)}")
    return declared


def declared_inputs(model_type: str, input_shape: Any, variant: str = "default", **kwargs: Any) -> tuple[TensorSpec, ...]:
    """The named inputs (name, per-sample shape, dtype) a model built with these arguments takes.

    Example:
        >>> [s.name for s in declared_inputs("embedding_lstm", (30, 4))]
        ['window', 'ids']
    """
    spec = get_spec(model_type)
    return _declare(spec, input_shape, resolve_params(spec, variant, kwargs))


def create_model(
    model_type: str,
    input_shape: tuple[int, ...] | Mapping[str, tuple[int, ...]],
    variant: str = "default",
    task: str = "regression",
    offset: LinearOffset | None = None,
    **kwargs: Any,
):
    """Builds a registered model; Keras models come back compiled.

    Args:
        model_type: a name from :func:`list_models` or an alias (``"adaptive"`` is
            ``"cnn_lstm"``); case-insensitive.
        input_shape: per-sample shape of the model's primary input, ``(timesteps, features)``
            for window models; or a ``{input name: shape}`` dict, checked against what the
            model declares. Multi-input models derive their other inputs from their
            hyperparameters (e.g. ``num_ids`` and ``vocab_size``). For ``"lightgbm"``,
            ``(n_features,)`` or ``(timesteps, features)`` (flattened).
        variant: a preset: ``"default"``, ``"tiny"``, and for the guide's families
            ``"lightweight"`` and ``"deep"``.
        task: ``"regression"`` (``output_dim``, default 1), ``"binary"``, ``"multiclass"``
            (``num_classes`` required), ``"quantile"`` (``quantiles``, ordered outputs,
            pinball loss) or ``"positive"`` (positive output, log2-MSE).
        offset: a fixed linear baseline the model adds to its output (a baseline-residual target: the
            network learns the correction); its input is ``input_shape[offset.input_name]``, ``(columns,)``.
        **kwargs: hyperparameters that override the preset's (see
            ``RECOMMENDED_HYPERPARAMETERS``), plus ``output_dim`` / ``num_classes`` / ``quantiles``.

    Returns:
        A compiled ``keras.Model`` named after the model type whose inputs carry the declared
        names (``"inputs"`` for a single window); for ``"lightgbm"``, an unfitted LightGBM
        scikit-learn estimator.

    Raises:
        ValueError: unknown model type, variant, task or keyword argument, or a bad shape.

    Example:
        >>> model = create_model("attention_lstm", input_shape=(60, 15), variant="lightweight",
        ...                      dropout=0.0)  # doctest: +SKIP
        >>> model.output_shape  # doctest: +SKIP
        (None, 1)
    """
    spec = get_spec(model_type)
    task_spec = resolve_task(task, output_dim=kwargs.get("output_dim"), num_classes=kwargs.get("num_classes"),
                             quantiles=kwargs.get("quantiles"), minimum=kwargs.get("minimum"))
    params = resolve_params(spec, variant, kwargs)
    kind = get_kind(spec.kind)
    if offset is None:
        return kind.build(spec, _declare(spec, input_shape, params), task_spec, params)
    if not kind.supports_offset:
        raise ValueError(f"model_type={spec.name!r} ({kind.name}) cannot add a baseline offset to its output. "
                         "Accepted: a factory Keras family or lightgbm, or offset=None")
    shapes = dict(input_shape) if isinstance(input_shape, Mapping) else {}
    if offset.input_name not in shapes or tuple(shapes[offset.input_name]) != (len(offset.weights),):
        raise ValueError(f"offset reads input {offset.input_name!r} of shape ({len(offset.weights)},): input_shape must "
                         f"give it. Received: input_shape={input_shape!r}")
    own = {name: shape for name, shape in shapes.items() if name != offset.input_name}
    declared = (*_declare(spec, own, params), TensorSpec(offset.input_name, (len(offset.weights),)))
    return kind.build(spec, declared, task_spec, params, offset=offset)


def get_model_callbacks(
    model_type: str,
    patience: int = 15,
    monitor: str = "val_loss",
    checkpoint_path: str | None = None,
) -> list:
    """Training callbacks tuned per family.

    Keras models get EarlyStopping (restoring the best weights), ReduceLROnPlateau (after a
    family-specific fraction of ``patience``) and, with ``checkpoint_path``, a ModelCheckpoint
    that keeps the best ``.keras`` file. LightGBM gets its own early-stopping and (silent)
    logging callbacks for ``LGBMModel.fit(callbacks=...)``.

    Args:
        model_type: a registered name or alias.
        patience: epochs (or boosting rounds) without improvement before stopping.
        monitor: the logged quantity to watch; ``*loss*`` and error metrics are minimized,
            others (accuracy, AUC) maximized.
        checkpoint_path: where to keep the best model (must end in ``.keras``).

    Returns:
        A list of callbacks.

    Example:
        >>> callbacks = get_model_callbacks("tcn", patience=10)  # doctest: +SKIP
        >>> [type(c).__name__ for c in callbacks]  # doctest: +SKIP
        ['EarlyStopping', 'ReduceLROnPlateau']
    """
    spec = get_spec(model_type)
    if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
        raise ValueError(f"patience must be an int >= 1. Received: patience={patience!r}")
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"monitor must be a metric name such as 'val_loss'. Received: monitor={monitor!r}")
    return get_kind(spec.kind).callbacks(spec, patience, monitor, checkpoint_path)


def extract_attention_weights(model, x) -> Any:
    """Attention weights of a model on a batch, as a NumPy array.

    Self-attention (Attention-LSTM's ``MultiHeadAttention``, the transformers) gives ``(batch, timesteps,
    timesteps)``: row ``i`` of a sample's map is how much step ``i`` attends to each step, averaged over heads,
    so ``attention_weights[0]`` is a heatmap. Attention pooling (``tcn_attention``'s ``TemporalAttention``) gives
    ``(batch, timesteps)``. Every row sums to 1. Works on a model loaded with ``keras.models.load_model``.

    Args:
        model: a Keras model with attention, e.g. ``create_model("attention_lstm", ...)``.
        x: a batch of the model's input, shape ``(batch, timesteps, features)`` (or its dict of named inputs).

    Returns:
        The weights of the first attention layer of the model.

    Raises:
        ValueError: if the model has no attention layer.

    Example:
        >>> model = create_model("attention_lstm", input_shape=(30, 4), variant="lightweight")  # doctest: +SKIP
        >>> extract_attention_weights(model, x).shape  # doctest: +SKIP
        (8, 30, 30)
    """
    import keras
    import numpy as np

    import ml.training_pipeline.layers  # noqa: F401  (a model loaded in a fresh process needs its custom layers)
    from ml.training_pipeline.layers import TemporalAttention  # imports Keras: only when a model is built or loaded

    maps = interpret(model, x, max_rows=len(next(iter(x.values())) if isinstance(x, Mapping) else x))[ATTENTION]
    if maps:
        weights = next(iter(maps.values()))
        return weights.mean(axis=1) if weights.ndim == 4 else weights  # (batch, heads, T, T) -> mean over heads
    layers = [layer for layer in getattr(model, "layers", []) if isinstance(layer, TemporalAttention)]
    if not layers:
        raise ValueError(
            "The model has no attention layer; models with attention: attention_lstm, tcn_attention and the "
            f"transformers. Received: model={getattr(model, 'name', type(model).__name__)!r}"
        )
    layer = layers[0]
    sequences = keras.Model(model.input, layer.input)(np.asarray(x, dtype="float32"), training=False)
    return keras.ops.convert_to_numpy(layer.attention_weights(sequences))
