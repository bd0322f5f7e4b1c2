"""The public model factory.

Example:
    >>> from ml.training_pipeline.models import create_model, list_models
    >>> "tcn" in list_models()
    True
    >>> model = create_model("tcn", input_shape=(60, 15), variant="lightweight")  # doctest: +SKIP

Listing models and variants imports no TensorFlow; building one does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import ml.training_pipeline.architectures  # noqa: F401  (fills the registry)
from ml.training_pipeline.architectures.tcn import calculate_receptive_field
from ml.training_pipeline.registry import ESTIMATOR, VARIANTS, ModelSpec, get_spec, registered_names
from ml.training_pipeline.tasks import TASKS, resolve_task
from ml.training_pipeline.validation import check_input_shape, suggest, unknown_name_error

__all__ = [
    "AVAILABLE_MODELS",
    "MODEL_VARIANTS",
    "RECOMMENDED_HYPERPARAMETERS",
    "TASKS",
    "calculate_receptive_field",
    "create_model",
    "get_spec",
    "extract_attention_weights",
    "get_model_callbacks",
    "list_models",
]

AVAILABLE_MODELS: dict[str, str] = {name: get_spec(name).description for name in registered_names()}
"""Model name -> one-line description."""

MODEL_VARIANTS: tuple[str, ...] = VARIANTS
"""Variant names every family offers."""

RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    get_spec(name).family: {variant: dict(params) for variant, params in get_spec(name).variants.items()}
    for name in registered_names()
}
"""Family -> variant -> hyperparameters, as the families registered them (a copy: edit kwargs, not this)."""

# Arguments that belong to the task head, not the architecture.
_TASK_KWARGS = ("output_dim", "num_classes")

_DEFAULT_CALLBACK_SETTINGS = {"lr_patience_fraction": 1 / 3, "lr_factor": 0.5, "min_lr": 1e-6}


def list_models() -> list[str]:
    """Canonical names of all registered models, sorted.

    Example:
        >>> list_models()[:3]
        ['attention_lstm', 'cnn_lstm', 'lightgbm']
    """
    return registered_names()


def _resolve_params(spec: ModelSpec, variant: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Merges variant values with user kwargs (the user wins); rejects unknown names."""
    if not isinstance(variant, str) or variant.lower() not in spec.variants:
        raise unknown_name_error("variant", variant, spec.variants)
    params = dict(spec.variants[variant.lower()])
    accepted = set(params)
    unknown = sorted(set(kwargs) - accepted - set(_TASK_KWARGS))
    if unknown:
        allowed = sorted(accepted | set(_TASK_KWARGS))
        raise ValueError(
            f"Unknown keyword argument {unknown[0]!r} for model_type={spec.name!r}.{suggest(unknown[0], allowed)} "
            f"Accepted: {', '.join(allowed)}. Received: {', '.join(unknown)}"
        )
    params.update({k: v for k, v in kwargs.items() if k not in _TASK_KWARGS})
    return params


def create_model(
    model_type: str,
    input_shape: tuple[int, ...],
    variant: str = "default",
    task: str = "regression",
    **kwargs: Any,
):
    """Builds a registered model; Keras models come back compiled.

    Args:
        model_type: a name from :func:`list_models` or an alias (``"adaptive"`` is
            ``"cnn_lstm"``); case-insensitive.
        input_shape: per-sample shape, ``(timesteps, features)`` for neural models. For
            ``"lightgbm"``, ``(n_features,)`` or ``(timesteps, features)`` (windows are
            flattened to ``timesteps * features`` columns).
        variant: ``"lightweight"``, ``"default"`` or ``"deep"``.
        task: ``"regression"`` (``output_dim``, default 1), ``"binary"`` (sigmoid,
            binary cross-entropy) or ``"multiclass"`` (``num_classes`` required, softmax).
        **kwargs: hyperparameters that override the variant's (see
            ``RECOMMENDED_HYPERPARAMETERS``), plus ``output_dim`` / ``num_classes``.

    Returns:
        A compiled ``keras.Model`` named after the model type, with an input named
        ``"inputs"``; for ``"lightgbm"``, an unfitted LightGBM scikit-learn estimator.

    Raises:
        ValueError: unknown model type, variant, task or keyword argument, or a bad shape.

    Example:
        >>> model = create_model("attention_lstm", input_shape=(60, 15), variant="lightweight",
        ...                      dropout=0.0)  # doctest: +SKIP
        >>> model.output_shape  # doctest: +SKIP
        (None, 1)
    """
    spec = get_spec(model_type)
    task_spec = resolve_task(task, output_dim=kwargs.get("output_dim"), num_classes=kwargs.get("num_classes"))
    params = _resolve_params(spec, variant, kwargs)
    if spec.kind == ESTIMATOR:
        shape = check_input_shape(input_shape, min_ndim=1, max_ndim=2)
        return spec.builder(task=task_spec, n_features=math.prod(shape), **params)

    shape = check_input_shape(input_shape, min_ndim=2, max_ndim=2)
    import keras

    learning_rate = params.pop("learning_rate")
    inputs = keras.Input(shape=shape, name="inputs")
    features = spec.builder(inputs, **params)
    # float32 head: stays numerically safe under a mixed-precision policy.
    outputs = keras.layers.Dense(task_spec.units, activation=task_spec.activation, dtype="float32",
                                 name="head")(features)
    model = keras.Model(inputs, outputs, name=spec.name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
        loss=task_spec.loss,
        metrics=list(task_spec.metrics),
    )
    return model


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
    if spec.kind == ESTIMATOR:
        if checkpoint_path is not None:
            raise ValueError(
                f"checkpoint_path applies to Keras models only. Received: model_type={model_type!r}, "
                f"checkpoint_path={checkpoint_path!r}"
            )
        import lightgbm

        return [lightgbm.early_stopping(patience, verbose=False), lightgbm.log_evaluation(period=0)]
    if checkpoint_path is not None and not str(checkpoint_path).endswith(".keras"):
        raise ValueError(f"checkpoint_path must end with '.keras'. Received: checkpoint_path={checkpoint_path!r}")

    import keras

    settings = {**_DEFAULT_CALLBACK_SETTINGS, **spec.callback_settings}
    mode = "min" if ("loss" in monitor or "error" in monitor or monitor.endswith(("mae", "mse", "rmse"))) else "max"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            mode=mode,
            factor=settings["lr_factor"],
            patience=max(1, round(patience * settings["lr_patience_fraction"])),
            min_lr=settings["min_lr"],
        ),
    ]
    if checkpoint_path is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(checkpoint_path), monitor=monitor, mode=mode,
                                                         save_best_only=True))
    return callbacks


def extract_attention_weights(model, x) -> Any:
    """Attention weights over time of a model with a ``TemporalAttention`` layer.

    Args:
        model: e.g. ``create_model("attention_lstm", ...)`` or ``"tcn_attention"``.
        x: a batch, shape ``(batch, timesteps, features)``.

    Returns:
        A ``(batch, timesteps)`` NumPy array; each row sums to 1.

    Raises:
        ValueError: if the model has no temporal attention layer.

    Example:
        >>> model = create_model("attention_lstm", input_shape=(30, 4), variant="lightweight")  # doctest: +SKIP
        >>> extract_attention_weights(model, x).shape  # doctest: +SKIP
        (8, 30)
    """
    import keras
    import numpy as np

    from ml.training_pipeline.layers import TemporalAttention

    layers = [layer for layer in getattr(model, "layers", []) if isinstance(layer, TemporalAttention)]
    if not layers:
        raise ValueError(
            "The model has no TemporalAttention layer; models with attention: attention_lstm, tcn_attention. "
            f"Received: model={getattr(model, 'name', type(model).__name__)!r}"
        )
    layer = layers[0]
    sequences = keras.Model(model.input, layer.input)(np.asarray(x, dtype="float32"), training=False)
    return keras.ops.convert_to_numpy(layer.attention_weights(sequences))
