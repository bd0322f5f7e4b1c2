"""A model, layer and problem test harness, in the spirit of keras-hub's ``run_backbone_test`` and Keras'
``run_layer_test``: one call checks everything the library promises about a model, layer or problem.

The unit suite runs :func:`run_model_test` over every registered model (``tiny`` presets),
:func:`run_layer_test` over every custom layer and :func:`run_problem_test` over every registered
problem type (its ``example()``); a user adding a model gets the same checks with one line:

Example:
    >>> from ml.testing import run_model_test
    >>> report = run_model_test("tcn", preset="tiny", task="quantile")  # doctest: +SKIP
    >>> report["onnx_max_abs_diff"] < 1e-4  # doctest: +SKIP
    True
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.training_pipeline.common.metrics import LOWER_IS_BETTER
from ml.training_pipeline.common.tensors import check_named_inputs, generate_inputs, model_argument, take_rows
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.export import OnnxPredictor, export_onnx
from ml.training_pipeline.fitting.tracing import build_training_state
from ml.training_pipeline.models import create_model, declared_inputs, get_spec
from ml.training_pipeline.models.kinds import get_kind
from ml.training_pipeline.models.kinds.base import FitData, FitSettings
from ml.training_pipeline.models.tasks import resolve_task
from ml.training_pipeline.problems import problem_type

ROWS = 48
TOLERANCE = 1e-4
SGD_STEPS = (1e-2, 1e-3, 1e-4)
"""Learning rates tried, in order, for the "one step lowers the loss" check."""


def _targets(inputs: Mapping[str, np.ndarray], declared, task) -> np.ndarray:
    """Targets a model can learn: a function of the last steps of the first float input."""
    first = next(s.name for s in declared if s.dtype == "float32")
    x = inputs[first]
    signal = x.reshape(len(x), -1)[:, -3:].mean(axis=1) if x.ndim > 1 else x
    by_task = {
        "regression": lambda: np.repeat(signal[:, None], task.units, axis=1),
        "binary": lambda: (signal > 0).astype("float32")[:, None],
        "multiclass": lambda: np.digitize(signal, np.quantile(signal, np.linspace(0, 1, task.units + 1)[1:-1])),
        "quantile": lambda: signal[:, None],
        "positive": lambda: np.exp(signal)[:, None],
    }
    return np.asarray(by_task[task.task](), dtype="float32" if task.task != "multiclass" else "int32")


def _disable_dropout(model) -> None:
    """Rate 0 in every dropout layer, so an optimizer step is taken and judged on the same function."""
    for layer in model._flatten_layers(include_self=False):
        if hasattr(layer, "rate") and isinstance(layer.rate, float):
            layer.rate = 0.0


def _keras_checks(model, inputs, y, task, folder: Path, report: dict, compiled_step: bool = True) -> None:
    import keras
    import tensorflow as tf

    arg = model_argument(model, inputs)
    out = np.asarray(model(arg, training=False))
    # gradients reach every trainable weight
    loss_fn = keras.losses.get(task.loss()) if isinstance(task.loss(), str) else task.loss()
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(arg, training=True))
        loss += sum(model.losses) if model.losses else 0.0
    grads = tape.gradient(loss, model.trainable_variables)
    dead = [v.path for v, g in zip(model.trainable_variables, grads, strict=True) if g is None or not np.any(np.asarray(g))]
    assert not dead, f"{model.name}: no gradient reaches {dead}"
    # one small SGD step lowers the loss on a learnable batch (first-order certainty when gradients are right);
    # backtracking, because a tiny preset with stacked LayerNorms can be sharp enough at init that 1e-2 overshoots
    # The step itself is Keras' train step (train_on_batch), compiled unless compiled_step=False (then the same step
    # runs eagerly: no graph to trace); the losses around it are computed eagerly, as evaluate() would (mean loss
    # plus the model's own losses, training=False), without tracing a test function.
    def inference_loss(network) -> float:
        predicted = network(arg, training=False)
        return float(keras.ops.mean(loss_fn(y, predicted)) + (sum(network.losses) if network.losses else 0.0))

    # one clone and one compiled step for every step size: each try restores the weights and sets the rate (a
    # plain SGD keeps no other state), so a smaller step costs no second trace of the step
    clone = keras.models.clone_model(model)
    _disable_dropout(clone)
    clone.compile(optimizer=keras.optimizers.SGD(learning_rate=SGD_STEPS[0]), loss=task.loss(),
                  run_eagerly=not compiled_step)
    build_training_state(clone, arg, y)  # one trace of the step (fitting/tracing.py)
    for learning_rate in SGD_STEPS:
        clone.set_weights(model.get_weights())
        clone.optimizer.learning_rate.assign(learning_rate)
        before = inference_loss(clone)
        clone.train_on_batch(arg, y)
        after = inference_loss(clone)
        if after < before:
            break
    assert after < before, (f"{model.name}: no SGD step of {', '.join(map(str, SGD_STEPS))} lowered the loss "
                            f"({before:.6g} -> {after:.6g} at the last)")
    report["loss_before_after_step"] = (float(before), float(after))
    report["sgd_step"] = learning_rate
    # get_config round trip rebuilds the same function
    rebuilt = keras.Model.from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(np.asarray(rebuilt(arg, training=False)), out)
    # .keras round trip in safe mode
    path = folder / f"{model.name}.keras"
    # an optimizer never stepped has no slots yet; built now, the saved file holds the same variables that
    # loading builds, so Keras does not warn that it skipped them
    model.optimizer.build(model.trainable_variables)
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(arg, training=False)), out)


def run_model_test(
    name: str,
    preset: str = "tiny",
    task: str = "regression",
    input_shape: Any = None,
    *,
    check_onnx: bool | None = None,
    compiled_step: bool = True,
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, Any]:
    """Builds a registered model from its declared inputs and checks it end to end.

    Checks: generated inputs of the declared names, dtypes and shapes are accepted; output
    shape and finite values (probabilities in range for classifiers); for models with
    gradients, gradients reach every trainable weight, one SGD step lowers the loss, and
    ``get_config`` and ``.keras`` round trips give identical predictions; for other kinds,
    fit, predict, and save/load give identical predictions; ONNX parity on every output
    (with integer inputs still integer) when the spec says the model exports; the same
    prediction twice when the spec says it is deterministic.

    Args:
        name: a registered model name.
        preset: the preset to build (``tiny`` by default).
        task: ``regression``, ``binary``, ``multiclass``, ``quantile`` or ``positive``.
        input_shape: the primary input's shape; default ``(12, 3)`` (or ``(12,)`` for 1-D models).
        check_onnx: force the ONNX check on or off; default: the spec's ``onnx_exportable``.
        compiled_step: take the one SGD step through Keras' compiled (graph) train step; ``False`` runs the same
            step eagerly, for a head whose body's graph training is checked in another case.
        seed: seed for weights and data.
        **kwargs: passed to ``create_model`` (e.g. ``num_classes=3``).

    Returns:
        Facts found (``params``, ``output_shape``, ``onnx_max_abs_diff``...).

    Raises:
        AssertionError: naming the check that failed.
    """
    import keras

    spec = get_spec(name)
    adapter = get_kind(spec.kind)
    if input_shape is None:
        input_shape = (12, 3) if spec.shape_ndim[1] >= 2 else (12,)
    task_kwargs = {k: kwargs[k] for k in ("output_dim", "num_classes", "quantiles", "minimum") if k in kwargs}
    task_spec = resolve_task(task, **task_kwargs)
    declared = declared_inputs(name, input_shape, preset, **kwargs)
    keras.utils.set_random_seed(seed)
    model = create_model(name, input_shape, variant=preset, task=task, **kwargs)
    inputs = generate_inputs(declared, ROWS, seed=seed)
    y = _targets(inputs, declared, task_spec)
    report: dict[str, Any] = {"model": spec.name, "preset": preset, "task": task}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not adapter.supports_gradients:
            half = ROWS // 2
            train = FitData(take_rows(inputs, slice(0, half)), y[:half].reshape(half, -1).squeeze(-1)
                            if task_spec.task != "regression" or task_spec.units == 1 else y[:half])
            validation = FitData(take_rows(inputs, slice(half, None)), y[half:].reshape(ROWS - half, -1).squeeze(-1))
            adapter.fit(model, train, validation, FitSettings(epochs=5, patience=2, seed=seed))
        out = adapter.predict(model, inputs)
        expected_width = 1 if task_spec.task == "binary" else task_spec.units
        assert out.shape == (ROWS, expected_width), f"{name}: output shape {out.shape}, expected {(ROWS, expected_width)}"
        assert np.all(np.isfinite(out)), f"{name}: non-finite outputs"
        if task_spec.task in ("binary", "multiclass"):
            assert np.all((out >= 0) & (out <= 1)), f"{name}: probabilities outside [0, 1]"
        if task_spec.task == "multiclass":
            np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
        if task_spec.task == "quantile":
            assert np.all(np.diff(out, axis=1) >= 0), f"{name}: quantiles cross"
        if task_spec.task == "positive":
            assert np.all(out > 0), f"{name}: a positive-task output <= 0"
        if spec.capabilities.deterministic:
            np.testing.assert_array_equal(adapter.predict(model, inputs), out)
        if adapter.supports_gradients:
            _keras_checks(model, inputs, y, task_spec, folder, report, compiled_step)
        else:
            model_file = adapter.save(model, folder)
            np.testing.assert_allclose(adapter.predict(adapter.load(folder / model_file), inputs), out, rtol=1e-6, atol=1e-9)
        if spec.capabilities.onnx_exportable if check_onnx is None else check_onnx:
            export = export_onnx(model, folder / "model.onnx", sample=inputs)
            assert export.max_scaled_diff <= TOLERANCE, f"{name}: ONNX differs by {export.max_abs_diff}"
            predictor = OnnxPredictor(export.path)
            onnx_dtypes = {s.name: s.dtype for s in predictor.inputs}
            feed = adapter.onnx_feed(inputs)
            for input_name, array in feed.items():
                assert onnx_dtypes[input_name] == str(array.dtype) or (array.dtype == np.float32 and
                                                                       onnx_dtypes[input_name] == "float32"), \
                    f"{name}: ONNX input {input_name!r} is {onnx_dtypes[input_name]}, declared {array.dtype}"
            few = {k: v[:3] for k, v in inputs.items()}  # a batch size other than the sample's runs too
            np.testing.assert_allclose(adapter.prediction_from_onnx(predictor.run(adapter.onnx_feed(few)), {}),
                                       out[:3], atol=TOLERANCE)
            report["onnx_max_abs_diff"] = export.max_abs_diff
            report["onnx_inputs"] = {s.name: s.dtype for s in predictor.inputs}
    report.update(params=adapter.size(model), output_shape=out.shape, inputs=[s.to_dict() for s in declared])
    return report


def _arrays(out) -> list[np.ndarray]:
    """A layer's output as a list of arrays (one for a single tensor)."""
    if isinstance(out, Mapping):
        out = list(out.values())
    return [np.asarray(o) for o in out] if isinstance(out, (tuple, list)) else [np.asarray(out)]


def custom_layers() -> dict[str, type]:
    """Every Keras layer class this package registers as serializable (``package="ml"``)."""
    import keras

    import ml.training_pipeline.layers  # noqa: F401  (registers them)

    return {key.split(">", 1)[1]: cls for key, cls in keras.saving.get_custom_objects().items()
            if key.startswith("ml>") and isinstance(cls, type) and issubclass(cls, keras.layers.Layer)
            and not issubclass(cls, keras.Model)}  # models (FastPredictModel) are checked by run_model_test


def run_layer_test(
    layer_cls: type,
    init_kwargs: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    *,
    expected_output_shape: Sequence[int] | None = None,
    check_onnx: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Checks a custom layer: call, finite output, declared output shape, ``get_config`` round trip,
    serialization by name, gradients to every weight and its input, ``.keras`` and ONNX round trips
    inside a model.

    A layer class may carry ``EXAMPLE = {"init_kwargs": {...}, "input_shape": (...)}``, used when
    the arguments are not given.

    Example:
        >>> from ml.training_pipeline.layers import TemporalAttention
        >>> run_layer_test(TemporalAttention, {"units": 4}, (2, 5, 3))  # doctest: +SKIP
    """
    import keras
    import tensorflow as tf


    example = getattr(layer_cls, "EXAMPLE", {})
    init_kwargs = dict(example.get("init_kwargs", {}) if init_kwargs is None else init_kwargs)
    shapes = example.get("input_shape", (2, 5, 3)) if input_shape is None else input_shape
    several = isinstance(shapes[0], (tuple, list))  # a layer of several inputs takes a list of shapes
    shapes = [tuple(s) for s in shapes] if several else [tuple(shapes)]
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype("float32") for shape in shapes]
    x = arrays if several else arrays[0]
    layer = layer_cls(**init_kwargs)
    outs = _arrays(layer(x))  # a layer may return several tensors, e.g. (output, attention weights)
    assert all(np.all(np.isfinite(o)) for o in outs), f"{layer_cls.__name__}: non-finite output"
    declared = layer.compute_output_shape(shapes if several else shapes[0])
    declared = [tuple(d) for d in declared] if len(outs) > 1 else [tuple(declared)]
    assert declared == [o.shape for o in outs], \
        f"{layer_cls.__name__}: compute_output_shape says {declared}, call gives {[o.shape for o in outs]}"
    if expected_output_shape is not None:
        assert outs[0].shape == tuple(expected_output_shape)
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    clone(x)
    clone.set_weights(layer.get_weights())
    for a, b in zip(_arrays(clone(x)), outs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is layer_cls
    variables = [tf.Variable(a) for a in arrays]
    with tf.GradientTape() as tape:
        # training=True where the layer takes it: training-only paths (weight noise, dropout) need gradients too
        trains = "training" in inspect.signature(layer.call).parameters
        called = layer(variables if several else variables[0], **({"training": True} if trains else {}))
        loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in (called if isinstance(called, (tuple, list)) else [called])])
    watched = [*layer.trainable_variables, *variables]
    grads = tape.gradient(loss, watched)
    dead = [getattr(v, "path", f"input {i - len(layer.trainable_variables)}") for i, (v, g) in
            enumerate(zip(watched, grads, strict=True)) if g is None or not np.any(np.asarray(g))]
    assert not dead, f"{layer_cls.__name__}: no gradient reaches {dead}"
    inputs = [keras.Input(shape[1:], name=f"inputs_{i}" if several else "inputs") for i, shape in enumerate(shapes)]
    symbolic = layer_cls(**init_kwargs)(inputs if several else inputs[0])
    if isinstance(symbolic, (tuple, list)):  # named outputs, so the ONNX file names them too
        symbolic = {f"output_{i}": o for i, o in enumerate(symbolic)}
    model = keras.Model(inputs if several else inputs[0], symbolic)
    report: dict[str, Any] = {"layer": layer_cls.__name__, "output_shape": outs[0].shape}
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "layer.keras")
        loaded = keras.models.load_model(Path(tmp) / "layer.keras", safe_mode=True)
        for a, b in zip(_arrays(loaded(x)), _arrays(model(x)), strict=True):
            np.testing.assert_array_equal(a, b)
        if check_onnx:
            sample = {f"inputs_{i}": a for i, a in enumerate(arrays)} if several else x
            report["onnx_max_abs_diff"] = export_onnx(model, Path(tmp) / "layer.onnx", sample=sample).max_abs_diff
    return report


def _split_position(bound: Any) -> Any:
    """A split bound as something ordered: ``"row 12"`` -> 12, an ISO time -> a timestamp."""
    import pandas as pd

    text = str(bound)
    return int(text[4:]) if text.startswith("row ") else pd.Timestamp(text)


def _metric_tables(report: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The report's entries shaped like its ``model`` metrics: the baselines it judges the model against (rows named
    ``model_...`` are the model itself, e.g. ``model_at_0.5``: its scores at another threshold)."""
    model = report["model"]
    return {name: value for name, value in report.items()
            if name != "model" and not name.startswith("model_") and isinstance(value, Mapping) and set(model) & set(value)
            and all(isinstance(v, (int, float)) for v in value.values())}


def run_problem_test(problem: Any, config: Any) -> dict[str, Any]:
    """Checks what every problem promises the pipeline, on the data ``config`` names.

    - the train, validation and test parts follow one another without overlap (rows or times);
    - every part's named inputs match the declared inputs; targets, weights and groups have one row each;
    - the naive baselines are computed on the same test rows as the model: the report covers exactly the test
      part's rows (``n``), the baselines do not move when the predictions do (none is derived from them), and
      the true targets score at least as well as every baseline on every metric;
    - the problem survives a save/load round trip: its description and schema are JSON, the stored type name
      finds its class again, and a problem rebuilt from the schema (where the problem serves files) describes
      itself the same way.

    Args:
        problem: a problem object (e.g. ``ArraysProblem(...)``, or the first item of ``cls.example()``).
        config: a ``TrainingConfig`` (or its keyword arguments) whose data the problem prepares.

    Returns:
        What was checked: the rows of each part, the baselines' names, and whether the problem rebuilt
        from its schema.

    Raises:
        AssertionError: naming the promise that failed.

    Example:
        >>> from ml.testing import run_problem_test
        >>> from ml.training_pipeline.problems import PriceReturn
        >>> problem, arguments = PriceReturn.example()
        >>> sorted(run_problem_test(problem, arguments)["baselines"])
        ['moving_average', 'persistence']
    """
    import json


    config = TrainingConfig(**config) if isinstance(config, Mapping) else config
    data = problem.prepare(config)
    parts = {"train": data.train, "validation": data.validation, "test": data.test}

    bounds = [(name, [_split_position(b) for b in data.splits[name]]) for name in parts]
    for (first, (_, first_end)), (second, (second_start, _)) in zip(bounds, bounds[1:], strict=False):
        assert first_end < second_start, (f"{type(problem).__name__}: the {first} part ends at {data.splits[first][1]}, "
                                          f"not before the {second} part starts at {data.splits[second][0]}")
    for name, part in parts.items():
        rows = len(part.y)
        assert rows > 0, f"{type(problem).__name__}: the {name} part is empty"
        check_named_inputs(part.inputs, data.inputs, where=f"{name} inputs")
        for label, values in (("inputs", [*part.inputs.values()]), ("weights", [part.weight]), ("groups", [part.groups])):
            lengths = {len(v) for v in values if v is not None}
            assert lengths <= {rows}, f"{type(problem).__name__}: {name} {label} have {lengths} rows, targets {rows}"

    truth = np.asarray(data.test.y, np.float64).reshape(len(data.test.y), -1)
    perfect = problem.to_prediction(truth, data)
    report = problem.evaluate(perfect, data)
    shifted = problem.evaluate(problem.to_prediction(np.roll(truth, 1, axis=0), data), data)
    assert report.get("n") == len(truth), (f"{type(problem).__name__}: the report covers n={report.get('n')!r} rows, "
                                           f"the test part has {len(truth)}")
    baselines = _metric_tables(report)
    assert baselines, f"{type(problem).__name__}: the report has no baseline next to the model: {sorted(report)}"
    for name, metrics in baselines.items():
        assert shifted[name] == metrics, f"{type(problem).__name__}: baseline {name!r} moved with the predictions"
        for metric, value in metrics.items():
            if metric not in report["model"] or not np.isfinite(value) or not np.isfinite(report["model"][metric]):
                continue
            better = report["model"][metric] <= value + 1e-9 if metric in LOWER_IS_BETTER \
                else report["model"][metric] >= value - 1e-9
            assert better, (f"{type(problem).__name__}: the true targets score {metric}={report['model'][metric]:.6g}, "
                            f"worse than baseline {name!r} ({value:.6g}): the baseline is not on the same rows")
    summary = problem.summary(report)
    assert isinstance(type(problem).summary_line(summary), str)

    stored = json.loads(json.dumps({"problem": problem.describe(), "schema": data.schema}, default=str))
    assert stored["problem"] == problem.describe(), f"{type(problem).__name__}: describe() is not JSON"
    assert problem_type(stored["problem"]["type"]) is type(problem), \
        f"{type(problem).__name__}: the stored type {stored['problem']['type']!r} finds another class"
    try:
        rebuilt = type(problem).from_schema(stored["schema"])
    except NotImplementedError:
        rebuilt = None
    if rebuilt is not None:
        assert rebuilt.describe() == problem.describe(), f"{type(problem).__name__}: rebuilt from its schema differs"
    return {"rows": {name: len(part.y) for name, part in parts.items()}, "baselines": sorted(baselines),
            "rebuilt_from_schema": rebuilt is not None}
