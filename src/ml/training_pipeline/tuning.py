"""Hyperparameter search with keras-tuner over spaces derived from each model's presets.

The space of a model spans what its presets disagree on: a number takes the range between the
smallest and largest preset value (log-scaled for learning rates and wide ranges), a layer-size
tuple or a word is a choice among the presets' values; what all presets share stays fixed.
``overrides`` widen, narrow or fix any dimension. Every trial is trained exactly as ``atb train``
trains (:func:`ml.training_pipeline.pipeline.fit_model`: same splits, seed, deterministic ops,
early stopping) and scored by its best validation loss; the test part is never read.

Several processes share one search the way keras-tuner distributes it: with ``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` set, the process whose id contains ``chief`` runs the
oracle (it trains nothing and, when every trial is done, holds all results and writes the best), every other
process is a worker that asks the chief for trials and trains them. All processes run the same command with the
same ``--directory`` (a shared folder across hosts); ``atb cluster-local N --tuner -- atb tune ...`` starts a
chief and N workers on this machine. Each trial's folder records the worker that ran it (``worker.json``).

The search keeps its state in a project folder named after everything that defines it, so the
same call after an interruption resumes where it stopped (finished trials are not rerun). The
best hyperparameters are written to ``best_hyperparameters.json``, which ``atb train
--params-from`` (or ``TrainingConfig(model_kwargs=load_best_params(path))``) reuses.

Example:
    >>> from ml.training_pipeline.config import TrainingConfig
    >>> from ml.training_pipeline.tuning import tune
    >>> result = tune(TrainingConfig(symbol="BTCUSDT", model_type="tcn", days=365, epochs=10),
    ...               tuner="bayesian", max_trials=20)  # doctest: +SKIP
    >>> result.best_params, result.best_val_loss  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ml.training_pipeline.common.arguments import suggest, unknown_name_error
from ml.training_pipeline.models import get_spec
from ml.training_pipeline.pipeline import build_model, fit_built, plan_run, prepare

TUNERS: tuple[str, ...] = ("bayesian", "hyperband", "random")
DEFAULT_TUNING_DIR = "atb_tuning"
BEST_FILE = "best_hyperparameters.json"


@dataclass(frozen=True)
class Dimension:
    """One tuned hyperparameter: a range (``low``, ``high``) or a list of ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.choices:
            return {"choices": [list(c) if isinstance(c, tuple) else c for c in self.choices]}
        return {"low": self.low, "high": self.high, "log": self.log, "integer": self.integer}


def _as_value(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _range(name: str, values: list, log: bool | None = None) -> Dimension:
    low, high = min(values), max(values)
    integer = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if log is None:
        log = "learning_rate" in name or "weight_decay" in name or (low > 0 and high / low >= 10)
    return Dimension(name, low, high, log=bool(log and low > 0), integer=integer)


def search_space(model_type: str, variant: str = "default", overrides: Mapping[str, Any] | None = None
                 ) -> tuple[dict[str, Dimension], dict[str, Any]]:
    """The tuned dimensions and the fixed values of a model.

    Args:
        model_type: a registered Keras model.
        variant: the preset that gives the fixed values.
        overrides: ``{name: value}`` fixes a value; ``{name: [low, high]}`` sets a numeric range;
            ``{name: [a, b, c, ...]}`` (three or more, or non-numeric such as layer sizes) sets choices.
            The guide's names (``num_filters``...) are accepted.

    Returns:
        ``(dimensions, fixed)``.

    Raises:
        ValueError: unknown model, variant or overridden name, or an empty override.

    Example:
        >>> dims, fixed = search_space("tcn")
        >>> sorted(dims)[:3]
        ['dense_units', 'dropout', 'filters']
    """
    spec = get_spec(model_type)
    if variant not in spec.variants:
        raise unknown_name_error("variant", variant, spec.presets)
    presets = [p for name, p in spec.variants.items() if name != "tiny"] or [spec.variants[variant]]
    fixed = dict(spec.variants[variant])
    dims: dict[str, Dimension] = {}
    for name in fixed:
        values = [_as_value(p[name]) for p in presets if name in p]
        distinct = list(dict.fromkeys(values))
        if len(distinct) < 2 or name == "random_state":
            continue
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
        dims[name] = _range(name, distinct) if numeric else Dimension(name, choices=tuple(distinct))
    for raw, value in (overrides or {}).items():
        name = spec.param_aliases.get(raw, raw)
        if name not in fixed:
            raise ValueError(f"Search-space override for a parameter model_type={spec.name!r} does not have: "
                             f"{raw!r}.{suggest(raw, list(fixed))} Accepted: {', '.join(sorted(fixed))}")
        if isinstance(value, (list, tuple)) and not isinstance(fixed[name], (list, tuple)):
            values = [_as_value(v) for v in value]
            if not values:
                raise ValueError(f"Search-space override {raw!r} is empty. Give a value, [low, high] or choices")
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric and len(values) == 2 and values[0] > values[1]:
                raise ValueError(f"Search-space range {raw}=[{values[0]}, {values[1]}] runs backwards. Accepted: "
                                 f"[low, high] with low <= high, e.g. {raw}=[{values[1]}, {values[0]}]")
            dims[name] = _range(name, values) if numeric and len(values) == 2 else Dimension(name, choices=tuple(values))
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
            dims[name] = Dimension(name, choices=tuple(_as_value(v) for v in value))  # choices of layer sizes
        else:
            dims.pop(name, None)
            fixed[name] = _as_value(value)
    return dims, {k: v for k, v in fixed.items() if k not in dims}


def _choice_key(value: Any) -> str | int | float | bool:
    """keras-tuner choices must be scalars: a tuple of layer sizes becomes ``"128-64"``."""
    return "-".join(map(str, value)) if isinstance(value, tuple) else value


def sample(hp, dims: Mapping[str, Dimension]) -> dict[str, Any]:
    """The trial's values drawn from keras-tuner's ``HyperParameters`` object."""
    params = {}
    for name, d in dims.items():
        if d.choices:
            keys = [_choice_key(c) for c in d.choices]
            params[name] = dict(zip(keys, d.choices, strict=True))[hp.Choice(name, keys)]
        elif d.integer:
            params[name] = hp.Int(name, int(d.low), int(d.high), sampling="log" if d.log else "linear")
        else:
            params[name] = hp.Float(name, float(d.low), float(d.high), sampling="log" if d.log else "linear")
    return params


@dataclass(frozen=True)
class Trial:
    trial_id: str
    params: dict[str, Any]
    val_loss: float | None
    status: str
    worker: str | None = None
    """The keras-tuner id of the process that trained it (``None`` in a search of one process)."""


WORKER_FILE = "worker.json"
TUNER_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def tuner_role(environ: Mapping[str, str] | None = None) -> str | None:
    """This process's keras-tuner id in a distributed search (``chief``, ``tuner0``...), or ``None`` alone.

    Raises:
        ValueError: some of the ``KERASTUNER_*`` variables set but not all, or a port that is not a number
            (before any data is read).
    """
    import os

    environ = os.environ if environ is None else environ
    present = [name for name in TUNER_VARIABLES if environ.get(name)]
    if not present:
        return None
    if len(present) < len(TUNER_VARIABLES):
        missing = [name for name in TUNER_VARIABLES if name not in present]
        raise ValueError(f"A distributed search needs all of {', '.join(TUNER_VARIABLES)}; {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not set. Received: "
                         + ", ".join(f"{name}={environ[name]!r}" for name in present))
    port = environ["KERASTUNER_ORACLE_PORT"]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"KERASTUNER_ORACLE_PORT must be a port number 1..65535. Received: {port!r}")
    return environ["KERASTUNER_TUNER_ID"]


@dataclass(frozen=True)
class TuneResult:
    """A finished (or resumed) search.

    Attributes:
        best_params: the best trial's hyperparameters (tuned and fixed), ready for ``model_kwargs``.
        best_val_loss: its best validation loss.
        trials: every trial with its values and score.
        path: the ``best_hyperparameters.json`` written (``None`` on a distributed search's workers: the chief
            writes it).
        resumed_trials: trials that were already done when this call started.
        role: this process's keras-tuner id in a distributed search (``None`` alone); a worker's ``trials`` are
            the ones it trained.
    """

    model_type: str
    variant: str
    best_params: dict[str, Any]
    best_val_loss: float
    trials: list[Trial]
    path: Path | None
    resumed_trials: int = 0
    space: dict[str, Any] = field(default_factory=dict)
    role: str | None = None


def check_search(tuner: str, max_trials: object) -> None:
    """An accepted tuner and a trial budget >= 1 (checked before any data is read)."""
    if tuner not in TUNERS:
        raise unknown_name_error("tuner", tuner, TUNERS)
    if not isinstance(max_trials, int) or isinstance(max_trials, bool) or max_trials < 1:
        raise ValueError(f"max_trials must be an int >= 1. Received: max_trials={max_trials!r}")


def _project_name(config, tuner: str, dims: Mapping[str, Dimension], fixed: Mapping[str, Any]) -> str:
    """Everything that defines the search, hashed: the same call finds its own state again (and only its own)."""
    defining = {"config": {k: v for k, v in config.to_dict().items() if k not in ("models_dir",)}, "tuner": tuner,
                "space": {k: d.to_dict() for k, d in dims.items()}, "fixed": fixed}
    digest = hashlib.sha256(json.dumps(defining, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{config.store_name}_{config.model_type}_{config.variant}_{tuner}_{digest}"


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def tune(config, tuner: str = "bayesian", max_trials: int = 10, overrides: Mapping[str, Any] | None = None,
         directory: str | Path | None = None, problem=None, verbose: int = 1, log=print) -> TuneResult:
    """Searches ``config.model_type``'s hyperparameters on ``config``'s data, scored on the validation part only.

    Args:
        config: a :class:`~ml.training_pipeline.config.TrainingConfig`; its ``epochs`` (default 80, with early
            stopping) is each trial's budget (Hyperband's most epochs), its ``seed`` seeds every trial.
        tuner: ``"bayesian"`` (Gaussian-process optimisation), ``"hyperband"`` or ``"random"``.
        max_trials: most trials (for Hyperband too).
        overrides: see :func:`search_space`.
        directory: where the search keeps its state (default ``./atb_tuning``); the same call resumes there.
        problem: the problem object (default: the OHLCV problem ``config.target`` names).
        verbose: keras-tuner's per-trial progress (0: silent).
        log: called with a line per stage.

    Returns:
        A :class:`TuneResult`; ``best_hyperparameters.json`` is in the project folder.

    Raises:
        ValueError: unknown tuner, ``max_trials < 1``, an override the model does not have, a model keras-tuner
            cannot train (LightGBM), or bad data.
    """
    check_search(tuner, max_trials)
    role = tuner_role()
    plan = plan_run(config, problem)
    spec = plan.spec
    if not plan.adapter.supports_gradients:  # keras-tuner builds and fits Keras models only
        raise ValueError(f"atb tune searches neural models with keras-tuner; model_type={spec.name!r} is a tree "
                         "estimator. Tune it with --param on atb train, or use another model type")
    dims, fixed = search_space(spec.name, config.variant, {**dict(config.model_kwargs), **dict(overrides or {})})
    folder = Path(directory or DEFAULT_TUNING_DIR)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"The tuning directory cannot be used: {str(existing)!r} is a file, not a folder. "
                         f"Received: directory={str(folder)!r}")
    data = prepare(plan)
    import keras_tuner as kt  # imports TensorFlow: after every argument and the data were checked

    name = _project_name(config, tuner, dims, fixed)
    epochs = config.epochs or 80

    def trial_config(hp, budget: int = epochs):
        return replace(config, model_kwargs={**fixed, **sample(hp, dims)}, epochs=budget)

    class PresetHyperModel(kt.HyperModel):
        """A trial is ``atb train``'s build and fit with the sampled values (Hyperband: for its share of epochs)."""

        def build(self, hp):
            return build_model(plan.with_config(trial_config(hp)), data)

        def fit(self, hp, model, *args, **kwargs):
            budget = max(1, kwargs.get("epochs", epochs) - kwargs.get("initial_epoch", 0))
            history = fit_built(model, plan.with_config(trial_config(hp, budget)), data, callbacks=kwargs.get("callbacks"))
            return min(history["val_loss"])

    objective = kt.Objective("val_loss", direction="min")
    common = {"objective": objective, "seed": config.seed, "directory": str(folder), "project_name": name,
              "overwrite": False}
    classes = {"bayesian": kt.BayesianOptimization, "random": kt.RandomSearch, "hyperband": kt.Hyperband}
    budget = {"max_epochs": epochs, "factor": 3} if tuner == "hyperband" else {"max_trials": max_trials}
    search = _recording_worker(classes[tuner])(PresetHyperModel(), **budget, **common)
    if tuner == "hyperband":
        search.oracle.max_trials = max_trials  # Hyperband has no max_trials of its own; the oracle honours it
    done = 0 if role and "chief" not in role else sum(t.status == "COMPLETED" for t in search.oracle.trials.values())
    if done and log:
        log(f"resuming {folder / name}: {done} trial(s) already done")
    if log:
        where = "" if role is None else (
            f" as keras-tuner's chief (the oracle at {_oracle_address()}; the workers train)" if "chief" in role
            else f" as worker {role} of the chief at {_oracle_address()}")
        log(f"searching {len(dims)} hyperparameters of {spec.name} ({', '.join(dims) or 'none'}) with {tuner}, "
            f"up to {max_trials} trials{where}; objective: validation loss")
    search.search(verbose=verbose)

    def decode(values: Mapping[str, Any]) -> dict[str, Any]:
        decoded = {}
        for key, value in values.items():
            if key in dims:  # keras-tuner's own entries ("tuner/epochs"...) are not hyperparameters
                choices = dims[key].choices
                decoded[key] = {_choice_key(c): c for c in choices}[value] if choices else value
        return _jsonable({**fixed, **decoded})

    if role is not None and "chief" not in role:  # a worker: the trials it trained, as it recorded them
        mine = [json.loads(p.read_text()) for p in sorted((folder / name).glob(f"trial_*/{WORKER_FILE}"))]
        trials = [Trial(r["trial_id"], decode(r["values"]), r["val_loss"], r["status"], role)
                  for r in mine if r["worker"] == role]
        scored = [t for t in trials if t.val_loss is not None]
        best = min(scored, key=lambda t: t.val_loss) if scored else None
        return TuneResult(spec.name, config.variant, best.params if best else {},
                          best.val_loss if best else float("nan"), trials, None, 0,
                          {k: d.to_dict() for k, d in dims.items()}, role)
    trials = []
    for trial in sorted(search.oracle.trials.values(), key=lambda t: t.trial_id):
        score = float(trial.score) if trial.score is not None and math.isfinite(trial.score) else None
        record = Path(search.get_trial_dir(trial.trial_id)) / WORKER_FILE
        worker = json.loads(record.read_text())["worker"] if record.is_file() else None
        trials.append(Trial(trial.trial_id, decode(trial.hyperparameters.values), score, str(trial.status), worker))
    scored = [t for t in trials if t.val_loss is not None]
    if not scored:
        raise ValueError(f"No trial of the search finished with a validation loss ({len(trials)} trials). See {folder / name}")
    best = min(scored, key=lambda t: t.val_loss)
    path = folder / name / BEST_FILE
    payload = {"model_type": spec.name, "variant": config.variant, "params": best.params, "val_loss": best.val_loss,
               "trial_id": best.trial_id, "tuner": tuner, "seed": config.seed, "epochs": epochs,
               "space": {k: d.to_dict() for k, d in dims.items()}, "config": config.to_dict(),
               "trials": [t.__dict__ for t in trials]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)  # a reader never sees half a file
    return TuneResult(spec.name, config.variant, best.params, best.val_loss, trials, path, done,
                      payload["space"], role)


def _oracle_address() -> str:
    import os

    return f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"


def _recording_worker(tuner_class):
    """``tuner_class`` whose trials record, in their folder, the process that trained them and its score."""
    import os

    class RecordingTuner(tuner_class):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            worker = os.environ.get("KERASTUNER_TUNER_ID")
            if worker is None:
                return
            ended = self.oracle.get_trial(trial.trial_id)  # a worker asks the chief, which holds the score
            score = ended.score if ended.score is not None and math.isfinite(ended.score) else None
            record = {"trial_id": trial.trial_id, "worker": worker, "pid": os.getpid(), "val_loss": score,
                      "status": str(ended.status), "values": ended.hyperparameters.values}
            path = Path(self.get_trial_dir(trial.trial_id)) / WORKER_FILE
            path.write_text(json.dumps(record, default=str))

    RecordingTuner.__name__ = tuner_class.__name__
    return RecordingTuner


def load_best_params(path: str | Path, model_type: str | None = None) -> dict[str, Any]:
    """The hyperparameters a search stored, for ``model_kwargs`` (``atb train --params-from``).

    Raises:
        ValueError: a missing or unreadable file, or one written for another model type.
    """
    file = Path(path)
    if file.is_dir():
        file = file / BEST_FILE
    try:
        payload = json.loads(file.read_text())
        params, stored_type = payload["params"], payload["model_type"]
    except FileNotFoundError:
        raise ValueError(f"No tuning result at {str(path)!r} (expected {BEST_FILE} or its folder)") from None
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{str(file)!r} is not a tuning result written by atb tune") from None
    if model_type is not None and get_spec(model_type).name != stored_type:
        raise ValueError(f"The tuning result is for model_type={stored_type!r}. Received: model_type={model_type!r}")
    return {k: _as_value(v) for k, v in params.items()}
