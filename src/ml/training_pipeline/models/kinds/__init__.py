"""One adapter per model kind: how a model of that kind is built, fitted, used, saved and exported.

Everything that differs between a Keras network and a tree estimator (or, later, a model
that predicts by sampling) lives in its adapter; the rest of the library calls
:func:`get_kind` or :func:`kind_of` and never asks which kind it holds.

Example:
    >>> from ml.training_pipeline.models.kinds import get_kind
    >>> get_kind("keras").name
    'keras'
"""

from __future__ import annotations

from ml.training_pipeline.common.arguments import unknown_name_error
from ml.training_pipeline.models.kinds.base import ModelKind
from ml.training_pipeline.models.kinds.compiled import CompiledKerasKind
from ml.training_pipeline.models.kinds.estimator import EstimatorKind
from ml.training_pipeline.models.kinds.keras_kind import KerasKind
from ml.training_pipeline.models.registry import get_spec, register_kind

_ADAPTERS: dict[str, ModelKind] = {}


def register_adapter(adapter: ModelKind) -> ModelKind:
    """Adds a kind adapter (and its name to the registry's accepted kinds)."""
    register_kind(adapter.name)
    _ADAPTERS[adapter.name] = adapter
    return adapter


# estimator first: its ownership test is the narrower one; a plug-in's model is owned by the Keras kind
for _adapter in (EstimatorKind(), KerasKind(), CompiledKerasKind()):
    register_adapter(_adapter)


def get_kind(name: str) -> ModelKind:
    """The adapter registered under ``name``."""
    if name not in _ADAPTERS:
        raise unknown_name_error("model kind", name, _ADAPTERS)
    return _ADAPTERS[name]


def window_value_bytes(model_type: str) -> float:
    """Bytes a fit of ``model_type`` holds per value of its windows (its kind's :attr:`ModelKind.window_value_bytes`),
    for the memory estimate.

    Example:
        >>> window_value_bytes("tcn"), window_value_bytes("lightgbm")
        (0.0, 0.7)
    """
    return get_kind(get_spec(model_type).kind).window_value_bytes


def kind_of(model) -> ModelKind:
    """The adapter that owns a model object.

    Raises:
        ValueError: no adapter accepts the object.
    """
    for adapter in _ADAPTERS.values():
        if adapter.owns(model):
            return adapter
    if hasattr(model, "export") and hasattr(model, "get_config"):  # Keras, but without a graph of inputs to trace
        raise ValueError(f"The Keras model has no defined inputs (a Sequential or subclassed model not built on "
                         f"keras.Input): build it with keras.Input first. Received: {type(model).__name__} without inputs")
    raise ValueError(f"Accepted: a Keras model or a fitted LightGBM estimator. Received: {type(model).__name__}")


__all__ = ["CompiledKerasKind", "EstimatorKind", "KerasKind", "ModelKind", "get_kind", "kind_of", "register_adapter"]
