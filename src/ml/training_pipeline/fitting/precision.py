"""Training precision: float32, or bfloat16 arithmetic on float32 weights where the CPU computes bf16 itself.

Measured with ``benchmarks/train_speed.py`` (setting ``bf16``) on an AMD EPYC with AVX512_BF16: Keras'
``mixed_bfloat16`` policy trains tcn, tcn_attention and transformer 1.12-1.28x faster with the same validation
loss, cnn_lstm no faster, and the LSTMs about 10% slower; where bf16 is emulated it is slower than float32.
So each family declares the precision it trains fastest in (``ModelSpec.training_precision``), and
``precision="auto"`` uses it only on a CPU with native bf16 arithmetic (AVX512_BF16 or AMX-BF16), float32
elsewhere.

What is stored, evaluated and exported is always the float32 model: training runs on a twin built from the
model's config with the mixed policy (its variables are float32, as Keras keeps them), and the trained
weights are copied back (:func:`training_twin`, :func:`copy_weights_back`). The layers that produce the
model's outputs keep float32 in the twin, as Keras advises for mixed precision.

Example:
    >>> resolve_precision("float32", "mixed_bfloat16", kind_supports=True)
    'float32'
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ml.training_pipeline.common.hardware import cpu_flags

TRAINING_PRECISIONS = ("float32", "mixed_bfloat16")
"""What a family can declare it trains in (``ModelSpec.training_precision``)."""
PRECISIONS = ("auto", *TRAINING_PRECISIONS)
"""Accepted values of ``TrainingConfig.precision`` (``atb train --precision``)."""
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""``/proc/cpuinfo`` flags of CPUs whose bf16 arithmetic is native (not emulated in float32)."""


def check_precision(value: object) -> str:
    """``value`` if it is one of :data:`PRECISIONS`, else a one-line ``ValueError``.

    Example:
        >>> check_precision("fp16")
        Traceback (most recent call last):
        ...
        ValueError: precision must be one of auto, float32, mixed_bfloat16. Received: precision='fp16'
    """
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}. Received: precision={value!r}")
    return str(value)


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU (or the given ``/proc/cpuinfo`` flags) computes bf16 natively."""
    return bool(NATIVE_BF16_FLAGS & set(flags)) if flags is not None else _native_bf16_here()


@functools.cache
def _native_bf16_here() -> bool:
    """This CPU's answer, read once per process (a run resolves its precision several times)."""
    return native_bf16(cpu_flags())


def resolve_precision(requested: str, family_precision: str, kind_supports: bool, native: bool | None = None) -> str:
    """The precision a run trains in: ``requested``, or for ``auto`` the family's own where the CPU has native bf16.

    Args:
        requested: one of :data:`PRECISIONS`.
        family_precision: the family's measured choice (``ModelSpec.training_precision``).
        kind_supports: whether the model kind can train in another precision (Keras: yes; LightGBM: no).
        native: whether the CPU computes bf16 natively; ``None`` reads it from ``/proc/cpuinfo``.

    Raises:
        ValueError: a precision other than float32 asked of a kind that trains in float32 only.
    """
    check_precision(requested)
    if requested == "auto":
        if family_precision == "float32" or not kind_supports:
            return "float32"
        return family_precision if (native_bf16() if native is None else native) else "float32"
    if requested != "float32" and not kind_supports:
        raise ValueError(f"precision={requested!r} needs a Keras model; this model kind trains in float32 only. "
                         "Accepted: precision='auto' or 'float32'")
    return requested


def training_twin(model: Any, precision: str, layer_classes: Mapping[str, type] | None = None) -> Any:
    """``model`` itself for float32 with nothing swapped, else a compiled copy with the same weights whose layers
    compute in ``precision`` and whose layers named in ``layer_classes`` are built as that class instead.

    Every layer but the inputs and the layers that produce the model's outputs takes the policy; layers
    built inside custom layers take it from the global policy, which is set while the twin is built. A swapped
    class must take its layer's config and weights as they are (a fused kernel for the same computation: the
    model kind's choice, e.g. ``FusedLSTM`` for ``keras.layers.LSTM``).
    """
    layer_classes = dict(layer_classes or {})
    if precision == "float32" and not layer_classes:
        return model
    import keras

    config = model.get_config()
    keep = _output_layer_names(config.get("output_layers", []))
    for layer in config["layers"]:
        name = layer.get("name", layer["config"].get("name"))  # a Sequential's entries name the layer in its config
        if layer["class_name"] != "InputLayer" and name not in keep and precision != "float32":
            layer["config"]["dtype"] = precision
        swapped = layer_classes.pop(name, None)
        if swapped is not None:
            layer.update(module=swapped.__module__, class_name=swapped.__name__,
                         registered_name=keras.saving.get_registered_name(swapped))
    if layer_classes:
        raise ValueError(f"layer_classes names layers the model does not have at its top level. "
                         f"Received: {sorted(layer_classes)}")
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        with model.distribute_strategy.scope():
            twin = type(model).from_config(config)
            twin.set_weights(model.get_weights())
            twin.compile_from_config(model.get_compile_config())
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return twin


def _output_layer_names(entries) -> set[str]:
    """Layer names in a functional config's ``output_layers``: ``[name, node, index]``, a list or a dict of them."""
    if isinstance(entries, dict):
        entries = list(entries.values())
    if entries and isinstance(entries[0], str):
        entries = [entries]
    return {entry[0] for entry in entries}


def copy_weights_back(twin: Any, model: Any) -> None:
    """Puts the trained twin's (float32) weights and its optimizer's state into the model that is stored and
    exported, so the saved ``.keras`` file carries the optimizer state as after a plain fit."""
    if twin is model:
        return
    model.set_weights(twin.get_weights())
    source, target = twin.optimizer, model.optimizer
    if source is None or target is None or not source.built:
        return
    with model.distribute_strategy.scope():
        if not target.built:
            target.build(model.trainable_variables)
    if len(target.variables) == len(source.variables):  # same optimizer config, same weights: same slots in order
        for mine, trained in zip(target.variables, source.variables, strict=True):
            mine.assign(trained)
