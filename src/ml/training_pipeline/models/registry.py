"""The model registry: a name -> spec table filled by a decorator.

The registry knows no architecture. Each family module decorates its builder with
:func:`register_model`; :mod:`ml.training_pipeline.models` imports the family modules and
looks names up here. Adding a model is one new module plus one import line.

A spec declares what the model consumes (named inputs with per-sample shapes and dtypes),
its presets (``default`` and ``tiny`` required, any others free) and capability flags that
the pipeline and the shared test harness read instead of asking "which kind is this?".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ml.training_pipeline.common.arguments import unknown_name_error
from ml.training_pipeline.common.tensors import (  # noqa: F401  (re-exported: the specs' vocabulary)
    DEFAULT_INPUT_NAME,
    DTYPES,
    KNOWN_INPUT,
    STATIC_INPUT,
    TensorSpec,
)
from ml.training_pipeline.fitting.precision import TRAINING_PRECISIONS

REQUIRED_PRESETS: tuple[str, ...] = ("default", "tiny")
"""Every model has these: ``default`` for users, ``tiny`` (smallest build that exercises every code path) for tests."""

GUIDE_VARIANTS: tuple[str, ...] = ("lightweight", "default", "deep")
"""The sizes the user's guide names; the guide's families offer all three."""

VARIANTS = GUIDE_VARIANTS  # backwards-compatible name

KERAS = "keras"
ESTIMATOR = "estimator"
COMPILED = "compiled"
"""A plug-in's own ``create_<name>(input_shape, **params)`` that returns a compiled Keras model."""

ONE_STEP_PER_EXECUTION: Mapping[str, Any] = MappingProxyType({"steps_per_execution": 1})
"""``compile_settings`` for a family whose one training step takes ~50 ms or more at batch 32 (transformers,
TFT, Mamba, xLSTM). Grouping 16 steps per execution (the Keras kind's default) hides a per-step dispatch
cost of a few milliseconds, which such steps do not notice (docs/speed.md: 1.0x for these families), while
Keras calls batch callbacks once per execution: 16 steps of a TFT are 20-80 s without a progress line."""

@dataclass(frozen=True)
class Capabilities:
    """What a model can do; tests and the pipeline read these flags, never the model's name or kind.

    Attributes:
        deterministic: the same weights and input give the same output at inference.
        onnx_exportable: ``export_onnx`` works; otherwise the model is stored without ONNX.
        adds_losses: the model adds its own losses (``add_loss``), e.g. a KL term.
        supports_masks: the model accepts a padding mask input.
        samples: the model draws predictions from a distribution when called with ``training=True``
            (weight posteriors, MC dropout), so ``predict_with_uncertainty`` can sample it; its plain
            prediction (and ONNX export) stays deterministic.
        samples_per_row: each row of a batch draws its own sample (dropout masks are drawn per element; a weight
            posterior is drawn once per call and is not), so ``predict_with_uncertainty`` stacks several draws
            of the same rows into one forward pass.
    """

    deterministic: bool = True
    onnx_exportable: bool = True
    adds_losses: bool = False
    supports_masks: bool = False
    samples: bool = False
    samples_per_row: bool = False

    def to_dict(self) -> dict[str, bool]:
        return dict(self.__dict__)


def single_window_inputs(input_shape: tuple[int, ...], params: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """The default input declaration: one float window named ``"inputs"``."""
    return (TensorSpec(DEFAULT_INPUT_NAME, tuple(input_shape), "float32"),)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the factory needs to know about one registered model.

    Attributes:
        name: canonical lower-case name, e.g. ``"tcn"``.
        builder: for ``kind="keras"``, ``builder(inputs, **params)`` gets one Keras tensor
            (single input) or a dict of them (several inputs) and returns the feature tensor
            the task head is put on, or a dict with that tensor under ``"features"`` plus extra
            named outputs (e.g. attention weights); for ``kind="estimator"``,
            ``builder(task=..., **params)`` returns an unfitted estimator.
        description: one line for ``AVAILABLE_MODELS`` and ``atb --help``.
        family: the family whose ``RECOMMENDED_HYPERPARAMETERS`` hold the presets.
        variants: preset name -> hyperparameters (``default`` and ``tiny`` always present).
        aliases: other accepted names.
        kind: the adapter that builds, fits, predicts, saves and exports it (``kinds/``).
        callback_settings: per-family tuning of ``get_model_callbacks``.
        declare_inputs: ``declare_inputs(input_shape, params)`` returns the model's
            :class:`TensorSpec` inputs; the first one is the primary input whose shape
            ``create_model(input_shape=...)`` gives.
        capabilities: flags read by the pipeline and the test harness.
        shape_ndim: ``(min, max)`` dimensions of the primary ``input_shape``.
        check_params: ``check_params(params)`` raises ``ValueError`` for a bad hyperparameter value;
            run by the factory and by ``TrainingConfig`` before any data is loaded or TensorFlow imported.
        default_params: the parameter count of the ``default`` preset at input (60, 15) with one
            regression output, shown in ``AVAILABLE_MODELS`` without building it (a test builds it and
            checks the figure).
    """

    name: str
    builder: Callable[..., Any]
    description: str
    family: str
    variants: Mapping[str, Mapping[str, Any]]
    aliases: tuple[str, ...] = ()
    kind: str = KERAS
    callback_settings: Mapping[str, Any] = field(default_factory=dict)
    declare_inputs: Callable[[tuple[int, ...], Mapping[str, Any]], tuple[TensorSpec, ...]] = single_window_inputs
    capabilities: Capabilities = Capabilities()
    shape_ndim: tuple[int, int] = (2, 2)
    check_params: Callable[[Mapping[str, Any]], None] | None = None
    default_params: int | None = None
    compile_settings: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``model.compile`` measured to train this family faster (over the kind's defaults,
    e.g. ``steps_per_execution``)."""
    training_precision: str = "float32"
    """The precision this family trains fastest in where the CPU computes bf16 natively (``"mixed_bfloat16"`` or
    ``"float32"``; measured per family, see :mod:`~ml.training_pipeline.fitting.precision`). The stored model is float32."""
    residual_params: Mapping[str, Any] = field(default_factory=dict)
    """Hyperparameters this family trains with when it learns the correction to a problem's baseline (a
    :class:`~ml.training_pipeline.models.LinearOffset`), measured per family; the user's own values win."""
    param_aliases: Mapping[str, str] = field(default_factory=dict)
    """Other accepted hyperparameter names -> the builder's names (e.g. the user's guide's ``num_filters`` for
    ``filters``); ``create_model`` renames them before checking."""

    @property
    def presets(self) -> tuple[str, ...]:
        """Preset names, the guide's sizes first, then ``tiny``, then any others."""
        order = [*GUIDE_VARIANTS, "tiny"]
        return tuple(sorted(self.variants, key=lambda n: (order.index(n) if n in order else len(order), n)))


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}
_KINDS: set[str] = {KERAS, ESTIMATOR, COMPILED}


def normalize_name(name: str) -> str:
    """Lower-cases a model name and treats '-' and ' ' like '_' ("TCN-Attention" -> "tcn_attention")."""
    if not isinstance(name, str):
        raise ValueError(f"model_type must be a string. Received: model_type={name!r}")
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def register_kind(name: str) -> None:
    """Declares a model kind (its adapter registers itself in :mod:`ml.training_pipeline.models.kinds`)."""
    _KINDS.add(name)


def register_model(
    name: str,
    *,
    description: str,
    variants: Mapping[str, Mapping[str, Any]],
    family: str | None = None,
    aliases: tuple[str, ...] = (),
    kind: str = KERAS,
    callback_settings: Mapping[str, Any] | None = None,
    declare_inputs: Callable[[tuple[int, ...], Mapping[str, Any]], tuple[TensorSpec, ...]] | None = None,
    capabilities: Capabilities | None = None,
    shape_ndim: tuple[int, int] = (2, 2),
    check_params: Callable[[Mapping[str, Any]], None] | None = None,
    default_params: int | None = None,
    compile_settings: Mapping[str, Any] | None = None,
    param_aliases: Mapping[str, str] | None = None,
    training_precision: str = "float32",
    residual_params: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a model builder under ``name``.

    Args:
        name: canonical name (lower case).
        description: one-line description.
        variants: preset name -> hyperparameters; must contain ``default`` and ``tiny``.
        family: family name for ``RECOMMENDED_HYPERPARAMETERS`` (defaults to ``name``).
        aliases: other names that resolve to this model.
        kind: ``"keras"``, ``"estimator"`` or another registered kind.
        callback_settings: overrides for ``get_model_callbacks`` (see models.py).
        declare_inputs: the model's named inputs from ``(input_shape, params)``; default: one
            float window named ``"inputs"``.
        capabilities: flags such as ``onnx_exportable``; default: all the usual ones.
        shape_ndim: accepted dimensions of the primary ``input_shape``.
        check_params: validates hyperparameter values cheaply (no TensorFlow), see :class:`ModelSpec`.
        default_params: the default preset's parameter count at (60, 15), see :class:`ModelSpec`.
        compile_settings: ``model.compile`` arguments for this family (over the kind's defaults).
        param_aliases: other accepted hyperparameter names -> the builder's names.
        training_precision: ``"mixed_bfloat16"`` for a family measured to train faster in it on CPUs with
            native bf16 (``precision="auto"`` then uses it there), else ``"float32"``.
        residual_params: hyperparameters for learning a baseline's correction, see :class:`ModelSpec`.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Example:
        >>> @register_model("my_mlp", description="A toy MLP.",
        ...                 variants={"default": {"units": 8}, "tiny": {"units": 2}})
        ... def build_my_mlp(inputs, *, units):
        ...     ...
    """
    canonical = normalize_name(name)
    missing = [p for p in REQUIRED_PRESETS if p not in variants]
    if missing:
        raise ValueError(
            f"Model {canonical!r} must define the presets {', '.join(REQUIRED_PRESETS)} (others are free). "
            f"Received: {', '.join(variants) or 'none'}"
        )
    if kind not in _KINDS:
        raise unknown_name_error("kind", kind, _KINDS)

    if training_precision not in TRAINING_PRECISIONS:
        raise ValueError(f"training_precision must be one of {', '.join(TRAINING_PRECISIONS)}. "
                         f"Received: training_precision={training_precision!r}")

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        taken = [n for n in (canonical, *map(normalize_name, aliases)) if n in _REGISTRY or n in _ALIASES]
        if taken:
            raise ValueError(f"Model name already registered: {taken[0]!r}")
        _REGISTRY[canonical] = ModelSpec(
            name=canonical,
            builder=builder,
            description=description,
            family=family or canonical,
            variants=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in variants.items()}),
            aliases=tuple(normalize_name(a) for a in aliases),
            kind=kind,
            callback_settings=MappingProxyType(dict(callback_settings or {})),
            residual_params=MappingProxyType(dict(residual_params or {})),
            declare_inputs=declare_inputs or single_window_inputs,
            capabilities=capabilities or Capabilities(),
            shape_ndim=shape_ndim,
            check_params=check_params,
            default_params=default_params,
            compile_settings=MappingProxyType(dict(compile_settings or {})),
            param_aliases=MappingProxyType(dict(param_aliases or {})),
            training_precision=training_precision,
        )
        for alias in aliases:
            _ALIASES[normalize_name(alias)] = canonical
        return builder

    return decorator


def unregister_model(name: str) -> None:
    """Removes a model and its aliases (for tests and notebooks that register throw-away models)."""
    spec = _REGISTRY.pop(normalize_name(name), None)
    for alias in spec.aliases if spec else ():
        _ALIASES.pop(alias, None)


def get_spec(name: str) -> ModelSpec:
    """Looks up a model by name or alias, case-insensitively.

    Raises:
        ValueError: for an unknown name, listing the registered names and the closest one.

    Example:
        >>> get_spec("TCN").name  # doctest: +SKIP
        'tcn'
    """
    key = normalize_name(name)
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY and key.isidentifier():
        _discover(key)
    if key not in _REGISTRY:
        # canonical names only: aliases are accepted but not advertised
        raise unknown_name_error("model_type", name, _REGISTRY)
    return _REGISTRY[key]


PLUGIN_PACKAGE = "ml.training_pipeline"
"""Where :func:`get_spec` looks for a ``models_<name>`` module when ``<name>`` is not registered."""


def _discover(key: str) -> None:
    """Imports ``ml.training_pipeline.models_<key>`` if such a module exists (the user's guide's way to add a model).

    The module may register itself with :func:`register_model`; if it only defines ``create_<key>(input_shape,
    **hyperparameters)`` returning a compiled Keras model (and optionally ``RECOMMENDED_HYPERPARAMETERS``), that
    function is registered here as a ``compiled`` model.
    """
    import importlib
    import importlib.util

    module_name = f"{PLUGIN_PACKAGE}.models_{key}"
    try:
        if importlib.util.find_spec(module_name) is None:
            return
    except ModuleNotFoundError:
        return
    module = importlib.import_module(module_name)
    create = getattr(module, f"create_{key}", None)
    if key in _REGISTRY or _ALIASES.get(key) in _REGISTRY or create is None:
        return
    presets = {name: dict(values) for name, values in getattr(module, "RECOMMENDED_HYPERPARAMETERS", {}).items()}
    presets.setdefault("default", {})
    presets.setdefault("tiny", presets["default"])  # a plug-in's own presets; tests build the default size
    register_model(key, description=(module.__doc__ or f"{key} (plug-in module {module_name})").strip().splitlines()[0],
                   variants=presets, kind=COMPILED)(create)


def registered_names() -> list[str]:
    """Canonical names of every registered model, sorted."""
    return sorted(_REGISTRY)
