"""What a model attends to and which variables it selects, read from its interpretable layers.

Layers that return ``(output, weights)`` mark themselves with ``EXPLAINS`` (``"attention"`` or
``"variable_selection"``: TFT's ``VariableSelection`` and ``InterpretableMultiHeadAttention``,
``BayesianSelfAttention``); Keras' ``MultiHeadAttention`` counts when the model calls it with
``return_attention_scores=True`` (the transformer encoders do). One probe model reads all of
their weights in a single forward pass (``training=False``).

Example:
    >>> from ml.training_pipeline.interpretation import interpret
    >>> found = interpret(model, {"inputs": x, "known": calendar})  # doctest: +SKIP
    >>> found["variable_selection"]["past_selection"].shape  # doctest: +SKIP
    (64, 60, 19)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml.training_pipeline.common.tensors import model_argument

ATTENTION, VARIABLE_SELECTION = "attention", "variable_selection"


def interpretable_layers(model) -> dict[str, tuple[str, Any]]:
    """``{layer name: (what it explains, its weights tensor)}`` for every interpretable layer of a Keras model."""
    layers = getattr(model, "layers", None)
    if not layers:  # not a Keras model (a LightGBM booster): nothing to show, and no Keras to import
        return {}
    import keras

    found = {}
    for layer in layers:
        explains = getattr(layer, "EXPLAINS", None)
        if explains is None and isinstance(layer, keras.layers.MultiHeadAttention):
            explains = ATTENTION
        try:
            output = layer.output
        except (AttributeError, ValueError):  # never called, or called more than once
            continue
        if explains and isinstance(output, (list, tuple)) and len(output) == 2:
            found[layer.name] = (explains, output[1])
    return found


def interpret(model, inputs: Mapping[str, np.ndarray] | np.ndarray, max_rows: int = 512) -> dict[str, dict[str, np.ndarray]]:
    """Attention maps and variable-selection weights of ``model`` on ``inputs``.

    Args:
        model: a Keras model (any other model has nothing to show and gives empty dicts).
        inputs: the model's named inputs (or one array for a single-input model).
        max_rows: rows used at most (the first ones).

    Returns:
        ``{"attention": {layer: (rows, [heads,] time, time)}, "variable_selection": {layer: (rows, [time,] variables)}}``.
    """
    found = interpretable_layers(model)
    result: dict[str, dict[str, np.ndarray]] = {ATTENTION: {}, VARIABLE_SELECTION: {}}
    if not found:
        return result
    import keras

    named = inputs if isinstance(inputs, Mapping) else {model.inputs[0].name: inputs}
    named = {k: np.asarray(v)[:max_rows] for k, v in named.items()}
    probe = keras.Model(model.input, {name: tensor for name, (_, tensor) in found.items()})
    outputs = probe(model_argument(model, named), training=False)
    for name, (explains, _) in found.items():
        result[explains][name] = keras.ops.convert_to_numpy(outputs[name])
    return result


def variable_importance(weights: np.ndarray, names: Sequence[str] | None = None) -> dict[str, float]:
    """Mean selection weight of each variable over rows (and time), largest first.

    Example:
        >>> variable_importance(np.array([[0.75, 0.25], [0.25, 0.75], [0.5, 0.5]]), ["a", "b"])
        {'a': 0.5, 'b': 0.5}
    """
    mean = np.asarray(weights, np.float64).reshape(-1, weights.shape[-1]).mean(axis=0)
    names = list(names) if names is not None and len(names) == len(mean) else [f"variable_{i}" for i in range(len(mean))]
    return dict(sorted(((n, float(v)) for n, v in zip(names, mean, strict=True)), key=lambda item: -item[1]))


def mean_attention(weights: np.ndarray) -> np.ndarray:
    """The ``(time, time)`` attention map averaged over rows (and heads)."""
    weights = np.asarray(weights, np.float64)
    return weights.reshape(-1, *weights.shape[-2:]).mean(axis=0)
