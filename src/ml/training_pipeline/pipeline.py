"""``train(config) -> TrainingResult``: the one place that wires data, model, callbacks,
fitting, evaluation, ONNX export and the model store together.

What differs between model kinds is the kind's adapter (``kinds/``); what differs between
problems is the problem object (``problems/``). This module asks neither which it holds.

Example:
    >>> from ml.training_pipeline.config import TrainingConfig
    >>> from ml.training_pipeline.pipeline import train
    >>> result = train(TrainingConfig(symbol="BTCUSDT", model_type="tcn", days=365))  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ml.training_pipeline.common.conformal import conformal_report
from ml.training_pipeline.common.interrupts import InterruptGuard
from ml.training_pipeline.common.metrics import format_report
from ml.training_pipeline.common.plots import plot_attention, plot_variable_importance
from ml.training_pipeline.common.sample_weights import check_group_weights, weigh_splits
from ml.training_pipeline.common.tensors import check_named_inputs
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.export import export_onnx
from ml.training_pipeline.fitting.curriculum import check_phases
from ml.training_pipeline.fitting.distribute import make_distribution, read_tf_config
from ml.training_pipeline.fitting.precision import resolve_precision
from ml.training_pipeline.fitting.progress import heartbeat, step_progress
from ml.training_pipeline.fitting.resume import plan_resume
from ml.training_pipeline.fitting.tracking import MlflowTracker
from ml.training_pipeline.models import create_model, declared_inputs, get_spec, resolve_params
from ml.training_pipeline.models.interpretation import interpret, mean_attention, variable_importance
from ml.training_pipeline.models.kinds import get_kind
from ml.training_pipeline.models.kinds.base import FitSettings, ModelKind
from ml.training_pipeline.models.registry import DEFAULT_INPUT_NAME, KNOWN_INPUT, ModelSpec
from ml.training_pipeline.problems import Problem, ProblemData, get_problem
from ml.training_pipeline.store.versions import ModelStore
from ml.training_pipeline.uncertainty import (
    calibration_scale,
    interval_report,
    predict_with_uncertainty,
    widened,
)


@dataclass(frozen=True)
class TrainingResult:
    """What one training run produced.

    Attributes:
        version_dir: the stored version folder.
        config: the run's configuration.
        report: test-window metrics with baselines (see ``evaluation``).
        history: per-epoch logs.
        onnx: the ONNX export report as a dict (``{"exported": False, ...}`` when the model cannot be exported).
        data: source, layout, rows and date range of the data used.
        row_counts: windows (or rows) per split.
        timings: seconds per stage.
        problem: the problem's description (type, name, task).
        distribution: strategy, replicas, workers and this process's task; ``version_dir`` is ``None`` on a
            multi-worker cluster's non-chief workers, which store nothing.
    """

    version_dir: Path | None
    config: TrainingConfig
    report: dict
    history: dict
    onnx: dict
    data: dict
    row_counts: dict
    timings: dict = field(default_factory=dict)
    problem: dict = field(default_factory=dict)
    distribution: dict = field(default_factory=dict)

    def table(self) -> str:
        """The compact end-of-training table."""
        if self.version_dir is None:
            epochs = len(next(iter(self.history.values()), []))
            return (f"{self.distribution.get('task')}: trained {self.config.model_type} ({self.config.variant}) for "
                    f"{epochs} epochs with {self.distribution.get('replicas')} replicas; the chief evaluates and "
                    "stores the version")
        # windows (or rows) per part, and for log windows the distinct lines they hold
        counts = ", ".join(
            f"{part} {v}" + (f" ({self.row_counts[part + '_lines']} lines)" if part + "_lines" in self.row_counts else "")
            for k, v in self.row_counts.items()
            if (part := k.split("_")[0]) in ("train", "validation", "test") and not k.endswith("_lines"))
        source = self.data.get("source", "?")
        span = (f"{', ' + self.data['timeframe'] if self.data.get('timeframe') else ''}, "
                f"{str(self.data.get('start'))[:16]} .. {str(self.data.get('end'))[:16]}"
                if self.data.get("start") else f", {self.data.get('rows')} rows")
        onnx = (f"parity max |diff| {self.onnx['max_abs_diff']:.2e}"
                + (f" (relative {self.onnx['max_scaled_diff']:.2e})"
                   if self.onnx.get("max_scaled_diff", self.onnx["max_abs_diff"]) < self.onnx["max_abs_diff"] else "")
                + f" (tolerance {self.onnx['tolerance']:.0e})"
                if self.onnx.get("exported", True) else f"not exported: {self.onnx.get('reason')}")
        lines = [
            f"model      {self.config.model_type} ({self.config.variant}), problem={self.problem.get('name')} "
            f"({self.problem.get('task')}), epochs run={len(next(iter(self.history.values()), []))}"
            + (f" in {max(self.history['phase'])} curriculum phases" if self.history.get("phase") else ""),
            f"data       {source}" + (f" [{self.data['layout']}]" if "layout" in self.data else "") + span,
            f"split      {counts}",
            format_report(self.report),
            f"onnx       {onnx}",
            f"stored     {self.version_dir}",
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class RunPlan:
    """What one run resolves once from its configuration: the model's spec, its kind adapter, the problem and
    the precision it trains in. :func:`train`, tuning and walk-forward hand this to every helper, which never
    looks any of them up again.

    Example:
        >>> from ml.training_pipeline.config import TrainingConfig
        >>> plan = plan_run(TrainingConfig(symbol="BTCUSDT", model_type="lightgbm"))
        >>> plan.spec.name, plan.adapter.name, plan.problem.store_key, plan.precision
        ('lightgbm', 'estimator', 'price', 'float32')
    """

    config: TrainingConfig
    spec: ModelSpec
    adapter: ModelKind
    problem: Problem
    precision: str

    def with_config(self, config: TrainingConfig) -> RunPlan:
        """The same plan for another configuration of the same model (a tuning trial, a walk-forward fold)."""
        if config.model_type != self.config.model_type:
            return plan_run(config, self.problem)
        return dataclasses.replace(self, config=config, precision=_precision(config, self.spec, self.adapter))


def _precision(config: TrainingConfig, spec: ModelSpec, adapter: ModelKind) -> str:
    return resolve_precision(config.precision, spec.training_precision, adapter.supports_precision)


def plan_run(config: TrainingConfig, problem: Problem | None = None) -> RunPlan:
    """Resolves ``config``'s model spec, kind adapter, problem (default: the OHLCV problem its ``target`` names)
    and training precision, once.

    Raises:
        ValueError: ``mixed_bfloat16`` asked of a model kind that trains in float32 only (before any data).
    """
    spec = get_spec(config.model_type)
    adapter = get_kind(spec.kind)
    if config.ensemble > 1 and not adapter.supports_ensemble:
        raise ValueError(f"ensemble={config.ensemble} needs a model whose members can be averaged in one file (a "
                         f"factory Keras family); model_type={config.model_type!r} is not one (model kind: "
                         f"{adapter.name}). Accepted: ensemble=1")
    if config.steps_per_epoch is not None and not adapter.supports_gradients:
        raise ValueError(f"steps_per_epoch={config.steps_per_epoch} sets the batches of a Keras epoch; "
                         f"model_type={config.model_type!r} ({adapter.name}) does not train in batches. Accepted: "
                         "steps_per_epoch=None (--steps-per-epoch with a Keras model)")
    problem = problem or get_problem(config.target, config.horizon, symbols=config.all_symbols)
    return RunPlan(config, spec, adapter, problem, _precision(config, spec, adapter))


def _grouping(config: TrainingConfig, data: ProblemData) -> dict[str, Any] | None:
    """What a stored version records of its groups: names, rows, weights and phases."""
    if data.train.groups is None:
        return None
    import numpy as np

    names, counts = np.unique(data.train.groups, return_counts=True)
    weight = data.train.weight
    return {
        "groups": [str(n) for n in names],
        "train_rows": {str(n): int(c) for n, c in zip(names, counts, strict=True)},
        "mean_weight": None if weight is None else {str(n): float(weight[data.train.groups == n].mean()) for n in names},
        "group_weights": config.to_dict()["group_weights"],
        "pos_weight": config.pos_weight,
        "curriculum": None if config.curriculum is None else [p.to_dict() for p in config.curriculum],
    }


def library_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's figures (stored with each version and benchmark)."""
    versions = {}
    for package in ("atb-ml", "tensorflow-cpu", "tensorflow", "keras", "onnxruntime", "tf2onnx", "lightgbm", "numpy",
                    "pandas", "scikit-learn", "keras-tuner"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _model_arguments(plan: RunPlan, data: ProblemData | None = None, **defaults: Any) -> dict[str, Any]:
    """The factory call's keyword arguments: the config's kwargs and learning rate win over ``defaults``, over the
    family's settings for learning a baseline's correction (when the data has an offset) and over the
    hyperparameters the data dictates (given only to the models that take them)."""
    config = plan.config
    accepted = plan.spec.variants["default"]
    dictated = {k: v for k, v in (data.model_params if data is not None else {}).items() if k in accepted}
    residual = dict(plan.spec.residual_params) if data is not None and data.offset is not None else {}
    kwargs = {**dictated, **residual, **defaults, **config.model_kwargs}
    if config.learning_rate is not None:
        kwargs["learning_rate"] = config.learning_rate
    return kwargs


def fit_inputs_to_model(plan: RunPlan, data: ProblemData) -> ProblemData:
    """The data restricted to the inputs the model reads; rejects, before any training, a model the data cannot feed.

    A problem may offer optional inputs (a price window's calendar ``known``, a several-symbols
    problem's ``static`` symbol id): they go to the models that declare them and are dropped for
    the others. Every other input must match the model's declaration exactly.

    Raises:
        ValueError: naming the input and what the model declares.
    """
    config, problem, spec = plan.config, plan.problem, plan.spec
    kwargs = _model_arguments(plan, data)
    # the names the model reads (its primary input first), from a probe declaration
    reads = [s.name for s in spec.declare_inputs((1,) * spec.shape_ndim[1], resolve_params(spec, config.variant, kwargs))]
    shapes = {s.name: s.shape for s in data.inputs}
    required = {name: shape for name, shape in shapes.items() if name not in data.optional or name in reads[:1]}
    declared = declared_inputs(config.model_type, required, config.variant, **kwargs)
    offered = [spec.name for spec in data.inputs]
    missing = [spec.name for spec in declared if spec.name not in offered]
    if missing:
        raise ValueError(f"model_type={config.model_type!r} reads the input {missing[0]!r}, which the "
                         f"{problem.name!r} problem does not provide. Provided: {', '.join(offered)}")
    if data.offset is not None:
        if not plan.adapter.supports_offset:
            raise ValueError(f"model_type={config.model_type!r} ({plan.adapter.name}) cannot learn the correction to the "
                             f"{problem.name!r} problem's baseline. Accepted: residual=False (--no-residual)")
        declared = (*declared, next(s for s in data.inputs if s.name == data.offset.input_name))
    data = data.with_inputs([spec.name for spec in declared])
    for name, split in (("train", data.train), ("validation", data.validation), ("test", data.test)):
        check_named_inputs(split.inputs, declared, where=f"{name} inputs")
    return data


def evaluate_fitted(model, plan: RunPlan, data: ProblemData):
    """Fits the problem's post-training decisions on the validation part, then scores the test part next to the
    baselines and, for point regression forecasts, the conformal interval at ``config.interval`` (split from the
    validation residuals, and adaptive; :mod:`~ml.training_pipeline.common.conformal`).

    Returns:
        ``(data, test predictions, report)``; ``report["interval"]`` holds the interval's coverage and what a stored
        version needs to give it at serving time.
    """
    problem, adapter = plan.problem, plan.adapter
    validation = problem.to_prediction(adapter.predict(model, data.validation.inputs), data)
    data = problem.fit_decision(validation, data)
    predictions = problem.to_prediction(adapter.predict(model, data.test.inputs), data)
    report = problem.evaluate(predictions, data)
    if problem.task.has_intervals and np.ndim(predictions) == 1:
        actual = lambda split: problem.to_prediction(np.asarray(split.y, np.float64).reshape(-1, 1), data)  # noqa: E731
        report["interval"] = conformal_report(validation, actual(data.validation), predictions, actual(data.test),
                                              plan.config.interval, problem.feedback_delay)
    return data, predictions, report


def _uncertainty(model, plan: RunPlan, data: ProblemData, log) -> dict | None:
    """Coverage of the central interval on the test part, for models that give one and targets that have one."""
    adapter, problem, config = plan.adapter, plan.problem, plan.config
    method = adapter.uncertainty_method(model)
    if not problem.task.has_intervals or method is None:
        return None

    log(f"uncertainty: {method} ({config.uncertainty_samples} samples where sampled) "
        "on the validation and test parts ...")
    to_target = lambda outputs: problem.to_prediction(outputs, data)  # noqa: E731
    # the raw interval, and the same interval widened by split conformal calibration on the validation part
    scale = calibration_scale(predict_with_uncertainty(
        model, data.validation.inputs, n_samples=config.uncertainty_samples,
        progress=step_progress(log, "uncertainty: validation part, draws", first_step_traces=True)), data.validation.y)
    prediction = predict_with_uncertainty(model, data.test.inputs, n_samples=config.uncertainty_samples,
                                          progress=step_progress(log, "uncertainty: test part, draws"))
    calibrated = interval_report(widened(prediction, scale), data.test.y, to_target=to_target)
    return {**interval_report(prediction, data.test.y, to_target=to_target),
            "calibration_scale": scale, "calibrated_coverage": calibrated["coverage"],
            "calibrated_mean_width": calibrated["mean_width"]}


def _variable_names(schema: dict, width: int) -> list[str] | None:
    """Names of the variables a selection layer weighs: the window's features (+ known ones), or the known ones."""
    known = list(schema.get("known_names", [])) if any(i["name"] == KNOWN_INPUT for i in schema.get("inputs", [])) else []
    for names in (list(schema.get("feature_names", [])) + known, known):
        if names and len(names) == width:
            return names
    return None


def _interpretation(model, data: ProblemData) -> dict:
    """Variable importance and mean attention maps of the model's interpretable layers, on real test inputs."""
    found = interpret(model, data.parity_sample())
    importance = {layer: variable_importance(w, _variable_names(data.schema, w.shape[-1]))
                  for layer, w in found["variable_selection"].items()}
    return {"variable_importance": importance,
            "attention": {layer: mean_attention(w) for layer, w in found["attention"].items()}}


def _plot_interpretation(explained: dict, folder: Path, title: str) -> None:
    if explained["variable_importance"]:
        plot_variable_importance(explained["variable_importance"], folder / "variable_importance.png", title)
    if explained["attention"]:
        plot_attention(explained["attention"], folder / "attention.png", title)


def apply_grouping(plan: RunPlan, data: ProblemData) -> ProblemData:
    """Checks the config's group weights and curriculum against the data's groups, then weighs the splits.

    Raises:
        ValueError: weights or phases naming a group the data lacks, grouping asked of a problem
            without groups, or a curriculum for a model kind that cannot run one.
    """
    config, adapter = plan.config, plan.adapter
    splits = (data.train, data.validation, data.test)
    known = None if data.train.groups is None else sorted(set().union(*(map(str, s.groups) for s in splits)))
    for name, value in (("group_weights", config.group_weights), ("curriculum", config.curriculum)):
        if value is not None and known is None:
            raise ValueError(f"{name} needs a problem with groups (several symbols, or ArraysProblem(groups=...)). "
                             f"Received: {name}={value!r} for a problem without groups")
    if config.group_weights is not None:
        check_group_weights(config.group_weights, known)
    if config.curriculum is not None:
        check_phases(config.curriculum, known)
        if not adapter.supports_curriculum:
            raise ValueError(f"model_type={config.model_type!r} ({adapter.name}) cannot train in curriculum phases; "
                             "use a Keras model or leave curriculum out")
    return weigh_splits(data, config.group_weights, config.pos_weight)


def prepare(plan: RunPlan) -> ProblemData:
    """The plan's problem data: grouped and weighted, restricted to the inputs the model reads.

    Raises:
        ValueError: bad data, or a model the data cannot feed (before TensorFlow is imported).
    """
    return fit_inputs_to_model(plan, apply_grouping(plan, plan.problem.prepare(plan.config)))


class SampleWindows(NamedTuple):
    """Model-ready windows of one symbol's bars, as ``atb train`` prepares them (see :func:`load_sample_windows`)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]


def load_sample_windows(symbol: str = "BTCUSDT", *, days: int | None = 365, target: str = "return",
                        sequence_length: int = 60, timeframe: str = "1h", data_path: str | None = None) -> SampleWindows:
    """Real ``(rows, sequence_length, 15)`` windows for a notebook: the bundled BTCUSDT hours (or ``data_path``),
    through the same path as ``atb train`` (features without look-ahead, chronological train / validation /
    test parts with gaps, scaling fitted on the training part). Targets are as the models are fitted on them (the
    next log return standardised on the training part; ``"direction"``: 0/1; ``"volatility"``: standardised).

    Args:
        symbol: the bundled sample's symbol, or a name for ``data_path``.
        days: the last ``days`` days (``None``: all of them).
        target: ``return``, ``direction`` or ``volatility``.
        sequence_length: bars per window.
        timeframe: ``1h``, ``4h`` or ``1d``.
        data_path: a CSV or Parquet OHLCV file instead of the bundled sample.

    Returns:
        A :class:`SampleWindows` (a named tuple: ``x_train, y_train, x_val, y_val, x_test, y_test, feature_names``).

    Example:
        >>> x_train, y_train, x_val, y_val, x_test, y_test, names = load_sample_windows(days=60)
        >>> x_train.shape[1:], len(names), len(x_test) > 0
        ((60, 15), 15, True)
    """
    # the problem's own preparation: any model type would do, none is built
    config = TrainingConfig(symbol=symbol, model_type="lightgbm", target=target, days=days, timeframe=timeframe,
                            sequence_length=sequence_length, data_path=data_path, residual=False, calendar=False)
    data = get_problem(target, config.horizon).prepare(config)
    parts = [(split.inputs[DEFAULT_INPUT_NAME], np.asarray(split.y)) for split in (data.train, data.validation, data.test)]
    return SampleWindows(*(array for part in parts for array in part), tuple(data.schema["feature_names"]))


def build_model(plan: RunPlan, data: ProblemData, distribution=None):
    """The plan's model for the data, built after seeding everything with ``config.seed`` (deterministic ops on),
    inside ``distribution``'s strategy scope when one is given (:func:`~ml.training_pipeline.fitting.distribute.make_distribution`)."""
    import contextlib

    config, spec = plan.config, plan.spec
    # each kind seeds its own framework: a LightGBM run imports no TensorFlow (issue 24: +0.5 GB, 10-16 s)
    get_kind(spec.kind).seed(config.seed)
    # estimators that take a seed get the run's seed unless the user set one
    seeded = {"random_state": config.seed} if "random_state" in spec.variants[config.variant] else {}
    with distribution.strategy.scope() if distribution is not None else contextlib.nullcontext():
        return create_model(config.model_type, {s.name: s.shape for s in data.inputs}, variant=config.variant,
                            task=plan.problem.task, offset=data.offset, **_model_arguments(plan, data, **seeded))


def fit_built(model, plan: RunPlan, data: ProblemData, verbose: int = 0, log=None,
              callbacks: list | None = None, resume=None) -> dict[str, list[float]]:
    """Fits a model from :func:`build_model` as ``atb train`` does: the problem's monitor, the family's early
    stopping and learning-rate schedule, ``config``'s budget and seed; returns the history (``resume``: a
    :class:`~ml.training_pipeline.fitting.resume.ResumePlan` to back up to and continue from)."""
    config, spec, adapter, problem, precision = plan.config, plan.spec, plan.adapter, plan.problem, plan.precision
    monitor, monitor_callbacks = problem.fit_monitor(data)
    settings = FitSettings(epochs=config.epochs, batch_size=config.batch_size, steps_per_epoch=config.steps_per_epoch,
                           patience=config.patience,
                           seed=config.seed, verbose=verbose, callback_settings=spec.callback_settings,
                           phases=config.curriculum, monitor=monitor, monitor_callbacks=monitor_callbacks,
                           callbacks=callbacks, resume=resume, precision=precision, selection=config.selection,
                           fused_recurrence=config.fused_recurrence,
                           gap=data.row_counts.get("gap_rows", 0))
    if log is not None:
        computing = "" if precision == "float32" else f", computing in {precision} (stored as float32)"
        log(f"training {config.model_type} ({config.variant}) on {problem.store_key} ({problem.task.task}) "
            f"for {adapter.budget(model, settings)}{computing} ...")
    return adapter.fit(model, data.train, data.validation, settings)


def fit_model(plan: RunPlan, data: ProblemData, verbose: int = 0, log=None,
              callbacks: list | None = None, resume=None, distribution=None):
    """Builds and fits ``config``'s model: the one procedure of training, tuning and walk-forward evaluation, so a
    tuned trial's score is reproduced by training with its hyperparameters and seed.

    With ``config.ensemble = N > 1`` it trains N members with seeds ``seed .. seed + N - 1`` and combines them into one
    model (the kind's :meth:`~ml.training_pipeline.models.kinds.base.ModelKind.combine`); the history is the members'
    epochs one after another, with a ``member`` entry per epoch.

    Returns:
        ``(model, history)``.
    """
    config = plan.config
    if config.ensemble == 1:
        model = build_model(plan, data, distribution)
        return model, fit_built(model, plan, data, verbose, log, callbacks, resume)
    members, history = [], {}
    for index in range(config.ensemble):
        member_plan = plan.with_config(dataclasses.replace(config, seed=config.seed + index, ensemble=1))
        if log is not None:
            log(f"ensemble member {index + 1}/{config.ensemble} (seed {member_plan.config.seed})")
        member = build_model(member_plan, data, distribution)
        logs = fit_built(member, member_plan, data, verbose, log, callbacks)
        members.append(member)
        epochs, done = len(next(iter(logs.values()), [])), len(history.get("member", []))
        for key in (set(history) | set(logs)) - {"member"}:  # a key one member lacks stays aligned, as NaN
            history[key] = history.get(key, [float("nan")] * done) + logs.get(key, [float("nan")] * epochs)
        history["member"] = history.get("member", []) + [index + 1] * epochs
    return plan.adapter.combine(members), history


def _undistributed(model, plan: RunPlan, data: ProblemData):
    """The trained weights in a model outside any strategy: the chief predicts, exports and saves it alone (a
    multi-worker model would wait for the other workers at every prediction)."""
    copy = build_model(plan, data)
    copy.set_weights(model.get_weights())
    return copy


def _resume_backup(plan: RunPlan, store: ModelStore):
    """The run's backup, checked against the plan's config before any data is read."""
    config, problem, adapter = plan.config, plan.problem, plan.adapter

    if not adapter.supports_resume:
        raise ValueError(f"--resume needs a model trained epoch by epoch (a Keras model); model_type="
                         f"{config.model_type!r} is a {adapter.name} model, which retrains from scratch in seconds")
    role = read_tf_config() if config.distribute == "multi-worker" else None
    # every worker of a cluster keeps its own backup (the same state: they resume together)
    return plan_resume(store.root, config, problem.store_key, worker=role.rank if role else None)


def _tracker(config: TrainingConfig, problem: Problem, mlflow, experiment, register_model):
    """The run's MLflow tracker, or ``None`` (tracking off)."""
    return MlflowTracker.from_settings(mlflow, experiment, register_model,
                                       default_experiment=f"atb-{config.store_name}-{problem.store_key}")


def _tracked_params(plan: RunPlan, data: ProblemData) -> dict[str, Any]:
    """What the tracker records as parameters: the configuration, the model's resolved hyperparameters, the data."""
    config = plan.config
    return {"config": config.to_dict(), "model": resolve_params(plan.spec, config.variant, _model_arguments(plan, data)),
            "data": {k: v for k, v in data.data.items() if not isinstance(v, (dict, list))},
            "rows": data.row_counts}


def training_precision(config: TrainingConfig) -> str:
    """The precision ``config``'s model trains in here (``auto`` resolved against the family and this CPU).

    Raises:
        ValueError: ``mixed_bfloat16`` asked of a model kind that trains in float32 only (before any data).
    """
    return plan_run(config).precision


def _check_ensemble(plan: RunPlan, resume: bool) -> None:
    """A seed ensemble trains its members one after another in one process: no backup to resume from, no cluster."""
    config = plan.config
    if config.ensemble > 1 and (resume or config.distribute != "none"):
        raise ValueError(f"ensemble={config.ensemble} trains its members in one process, without --resume or "
                         f"--distribute. Received: resume={resume}, distribute={config.distribute!r}")


def _check_distribution(plan: RunPlan) -> None:
    """A strategy the model kind can train under, and for ``multi-worker`` a valid ``TF_CONFIG`` (before any data)."""
    config, adapter = plan.config, plan.adapter
    if config.distribute == "none":
        return
    if not adapter.supports_distribution:
        raise ValueError(f"distribute={config.distribute!r} needs a model of the factory's Keras kind; model_type="
                         f"{config.model_type!r} is a {adapter.name} model. Accepted: distribute='none'")
    if config.distribute == "multi-worker":
        read_tf_config()


def train(config: TrainingConfig, verbose: int | None = None, log=None, problem: Problem | None = None,
          resume: bool = False, mlflow: bool | str | None = None, mlflow_experiment: str | None = None,
          register_model: str | None = None, ensemble: int | None = None) -> TrainingResult:
    """Trains, evaluates, exports and stores one model.

    Args:
        config: the run's settings.
        verbose: Keras verbosity; default: progress bars on a terminal, one line per
            epoch otherwise.
        log: called with one line per stage (data loaded, training, export...).
        problem: a problem object (e.g. an :class:`~ml.training_pipeline.problems.ArraysProblem`
            on your own arrays); default: the OHLCV problem ``config.target`` names.
        resume: back the training state up after every epoch and, when a backup of the same run exists (a
            killed run), continue from its last finished epoch (see :mod:`~ml.training_pipeline.fitting.resume`).
        mlflow: log the run to MLflow (:mod:`~ml.training_pipeline.fitting.tracking`): a tracking URI, ``True`` for
            ``MLFLOW_TRACKING_URI`` (or MLflow's default), ``False`` never; ``None`` (default): only when
            ``MLFLOW_TRACKING_URI`` is set.
        mlflow_experiment: the experiment (default ``atb-<name>-<problem>``).
        register_model: also register the stored version under this model name.
        ensemble: replaces ``config.ensemble``: train this many seeds and store their mean as one model.

    Returns:
        A :class:`TrainingResult`; the version folder is complete when this returns.

    Raises:
        ValueError: bad data or settings (nothing is written to the store), or ``resume`` for a model that does
            not train epoch by epoch or with a configuration that differs from its backup's.

    Example:
        >>> result = train(TrainingConfig(symbol="BTCUSDT", model_type="lstm", days=120, epochs=3))  # doctest: +SKIP
    """
    # a Ctrl-C received anywhere in the run (even one a native callback swallowed) forbids storing the version
    with InterruptGuard() as guard:
        return _train(config, verbose, log, problem, resume, mlflow, mlflow_experiment, register_model, ensemble,
                      guard)


def _train(config: TrainingConfig, verbose, log, problem, resume, mlflow, mlflow_experiment, register_model,
           ensemble, guard: InterruptGuard) -> TrainingResult:
    """:func:`train` inside its interrupt guard."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    log = log or (lambda line: None)
    if ensemble is not None:
        config = dataclasses.replace(config, ensemble=ensemble)
    plan = plan_run(config, problem)  # a precision the model kind cannot train in is refused before any data
    problem = plan.problem
    store = ModelStore(config.models_dir)
    store.target_dir(config.store_name, problem.store_key)  # a bad name fails now, not after training
    store.check_writable()  # and a store that is a file or read-only, before the data is read
    _check_distribution(plan)
    _check_ensemble(plan, resume)
    backup = _resume_backup(plan, store) if resume else None
    tracker = _tracker(config, problem, mlflow, mlflow_experiment, register_model)
    if tracker is not None:
        tracker.check()  # an unreachable tracking store fails now, not after training
    # Data first: bad input fails in a fraction of a second, before TensorFlow is even imported.
    with heartbeat(log, "preparing the data (features, windows, baselines)"):
        data = prepare(plan)
    timings["data_s"] = time.perf_counter() - started
    # before any TensorFlow op: a multi-worker strategy connects to the other workers here (and waits for them)
    distribution = make_distribution(config.distribute)
    if distribution is not None:
        log(distribution.describe(config.batch_size))

    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    if data.data.get("start") and data.data.get("timeframe"):
        log(f"data: {data.data['rows']} {data.data.get('timeframe')} bars from {data.data['source']}, layout "
            f"{data.data.get('layout')}, {data.data['start'][:16]} .. {data.data['end'][:16]}")
    else:
        log(f"data: {data.data.get('rows')} rows from {data.data.get('source')}")
    for note in data.notes:
        log(f"data: {note}")
    log(f"split: {', '.join(f'{k} {v}' for k, v in data.row_counts.items())} (chronological; scaling fitted on train only)")
    if distribution is not None and not distribution.is_chief:
        tracker = None  # the chief logs the run
    if tracker is not None:
        tracker.start(f"{config.store_name} {config.model_type} ({config.variant})", _tracked_params(plan, data),
                      tags={"atb.symbol": config.store_name, "atb.model_type": config.model_type,
                            "atb.problem": problem.store_key, "atb.distribute": config.distribute})
        log(f"mlflow: run {tracker.run_id} in experiment {tracker.experiment!r} at {tracker.uri or '(default)'}")
    try:
        result = _fit_evaluate_store(plan, data, store, backup, distribution, verbose, log, timings,
                                     started, tracker, guard)
    except BaseException:
        if tracker is not None:
            tracker.end(failed=True)
        raise
    if tracker is not None:
        tracker.log_history(result.history)
        tracker.log_results(result.report, problem.summary(result.report))
        registered = tracker.log_version(result.version_dir)
        tracker.end()
        log(f"mlflow: logged params, {len(result.history)} metric series, test metrics with baselines and the "
            f"version's files" + (f"; registered as {tracker.register_model!r} version {registered}" if registered
                                  else ""))
    return result


def _fit_evaluate_store(plan: RunPlan, data: ProblemData, store: ModelStore, backup,
                        distribution, verbose: int, log, timings: dict, started: float, tracker,
                        guard: InterruptGuard) -> TrainingResult:
    """Fits, evaluates on the test part, exports and stores: the part of :func:`train` after every check."""
    config, spec, adapter, problem = plan.config, plan.spec, plan.adapter, plan.problem
    resumed_from = backup.finished_epochs if backup is not None else None
    live = adapter.epoch_callback(tracker.log_epoch) if tracker is not None else None
    tracking = {"mlflow_run_id": tracker.run_id, "mlflow_uri": tracker.uri} if tracker is not None else None
    fit_start = time.perf_counter()
    if backup is not None:
        log(backup.describe())
        backup.begin()
    model, history = fit_model(plan, data, verbose=verbose, log=log, resume=backup,
                               distribution=distribution, callbacks=[live] if live is not None else None)
    record = distribution.record() if distribution is not None else {
        "strategy": "none", "replicas": 1, "workers": 1, "task": "single process"}
    if distribution is not None:
        if backup is not None and distribution.role is not None:
            # the workers resume together or not at all: a backup left on one host only would desynchronise them
            backup.remove()
            backup = None
        if not distribution.is_chief:
            log(f"{distribution.role.describe()}: training finished; the chief evaluates, exports and stores")
            timings["fit_s"] = time.perf_counter() - fit_start
            return TrainingResult(None, config, {}, history, {}, data.data, data.row_counts, timings,
                                  problem.describe(), record)
        model = _undistributed(model, plan, data)
    with heartbeat(log, "evaluating on the validation and test parts"):
        data, predictions, report = evaluate_fitted(model, plan, data)
    timings["fit_s"] = time.perf_counter() - fit_start
    uncertainty = _uncertainty(model, plan, data, log)
    if uncertainty:
        report["uncertainty"] = uncertainty
    with heartbeat(log, "interpreting (attention, variable importances)"):
        explained = _interpretation(model, data)

    log("exporting to ONNX (with parity check) and storing ..." if spec.capabilities.onnx_exportable
        else "storing (this model cannot be exported to ONNX) ...")
    with store.new_version(config.store_name, problem.store_key, before_commit=guard.check) as staging:
        if spec.capabilities.onnx_exportable:
            onnx_report = export_onnx(model, staging / "model.onnx", sample=data.parity_sample(), log=log).to_dict()
            onnx_report = {"exported": True, **{k: v for k, v in onnx_report.items() if k != "path"}}
        else:
            onnx_report = {"exported": False, "reason": f"model_type={spec.name!r} declares onnx_exportable=False"}
        with heartbeat(log, "storing the model and its plots"):
            model_file = adapter.save(model, staging)
            (staging / "feature_schema.json").write_text(json.dumps(data.schema, indent=2))
            title = f"{', '.join(config.all_symbols)} {config.model_type} ({config.variant})"  # every symbol it learned
            problem.plot(predictions, data, history, staging, title)
            _plot_interpretation(explained, staging, title)
        timings["total_s"] = time.perf_counter() - started
        metadata = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": config.to_dict(),
            "problem": problem.describe(),
            "model": {"kind": spec.kind, "file": model_file, "size": adapter.size(model),
                      "inputs": [s.to_dict() for s in data.inputs], "capabilities": spec.capabilities.to_dict()},
            "data": data.data,
            "grouping": _grouping(config, data),
            "row_counts": data.row_counts,
            # rows the model saw while fitting or early stopping end here: `atb evaluate` flags them
            "splits": data.splits,
            "metrics": report,
            "summary": problem.summary(report),
            "interpretation": {"variable_importance": explained["variable_importance"]},
            "onnx": onnx_report,
            "history": history,
            "timings": timings,
            # epochs finished by an interrupted attempt this run continued from (0: it ran from the start)
            "resumed_from_epoch": resumed_from,
            "distribution": record,
            "training_precision": plan.precision,
            "tracking": tracking,
            "library_versions": library_versions(),
            "python": sys.version.split()[0],
            "pid": os.getpid(),
        }
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    if backup is not None:  # the version is stored: nothing left to resume
        backup.remove()
    return TrainingResult(store.last_committed, config, report, history, onnx_report, data.data,
                          data.row_counts, timings, problem.describe(), record)
