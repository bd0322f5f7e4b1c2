"""The model registry: a name -> builder table filled by a decorator.

The registry knows no architecture. Each family module decorates its builder with
:func:`register_model`; :mod:`ml.training_pipeline.models` imports the family modules and
looks names up here. Adding a model is one new module plus one import line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ml.training_pipeline.validation import unknown_name_error

VARIANTS: tuple[str, ...] = ("lightweight", "default", "deep")
"""Every family offers these variants, smallest first."""

KERAS = "keras"
ESTIMATOR = "estimator"


@dataclass(frozen=True)
class ModelSpec:
    """Everything the factory needs to know about one registered model.

    Attributes:
        name: canonical lower-case name, e.g. ``"tcn"``.
        builder: for ``kind="keras"``, ``builder(inputs, **params)`` returns the feature
            tensor that the task head is put on; for ``kind="estimator"``,
            ``builder(task=..., **params)`` returns an unfitted estimator.
        description: one line for ``AVAILABLE_MODELS`` and ``atb --help``.
        family: the family whose ``RECOMMENDED_HYPERPARAMETERS`` hold the variants.
        variants: variant name -> hyperparameters.
        aliases: other accepted names.
        kind: ``"keras"`` or ``"estimator"``.
        callback_settings: per-family tuning of ``get_model_callbacks``.
    """

    name: str
    builder: Callable[..., Any]
    description: str
    family: str
    variants: Mapping[str, Mapping[str, Any]]
    aliases: tuple[str, ...] = ()
    kind: str = KERAS
    callback_settings: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def normalize_name(name: str) -> str:
    """Lower-cases a model name and treats '-' and ' ' like '_' ("TCN-Attention" -> "tcn_attention")."""
    if not isinstance(name, str):
        raise ValueError(f"model_type must be a string. Received: model_type={name!r}")
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def register_model(
    name: str,
    *,
    description: str,
    variants: Mapping[str, Mapping[str, Any]],
    family: str | None = None,
    aliases: tuple[str, ...] = (),
    kind: str = KERAS,
    callback_settings: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a model builder under ``name``.

    Args:
        name: canonical name (lower case).
        description: one-line description.
        variants: must hold exactly the names in :data:`VARIANTS`.
        family: family name for ``RECOMMENDED_HYPERPARAMETERS`` (defaults to ``name``).
        aliases: other names that resolve to this model.
        kind: ``"keras"`` or ``"estimator"``.
        callback_settings: overrides for ``get_model_callbacks`` (see models.py).

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Example:
        >>> @register_model("my_mlp", description="A toy MLP.",
        ...                 variants={v: {"units": 8} for v in VARIANTS})
        ... def build_my_mlp(inputs, *, units):
        ...     ...
    """
    canonical = normalize_name(name)
    if set(variants) != set(VARIANTS):
        raise ValueError(
            f"Model {canonical!r} must define the variants {VARIANTS}. Received: {tuple(variants)}"
        )
    if kind not in (KERAS, ESTIMATOR):
        raise ValueError(f"kind must be '{KERAS}' or '{ESTIMATOR}'. Received: kind={kind!r}")

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
        )
        for alias in aliases:
            _ALIASES[normalize_name(alias)] = canonical
        return builder

    return decorator


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
    if key not in _REGISTRY:
        raise unknown_name_error("model_type", name, [*_REGISTRY, *_ALIASES])
    return _REGISTRY[key]


def registered_names() -> list[str]:
    """Canonical names of every registered model, sorted."""
    return sorted(_REGISTRY)

