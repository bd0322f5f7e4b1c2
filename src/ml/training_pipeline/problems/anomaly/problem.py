"""Log-anomaly detection as a problem: windows of log events, anomalous when any event is labelled.

The data are a structured log CSV or a raw log file whose messages Drain3 maps to templates
(:mod:`ml.training_pipeline.problems.anomaly.formats`; the templates are stored with the model, so serving
maps new lines to the same ids and lines no template covers to an unseen one), grouped into windows and
encoded by a :class:`~ml.training_pipeline.problems.anomaly.windows.LogEncoder` fitted on the training
windows only; the parts are chronological, and sliding windows across a cut are dropped.

Training for a rare class: anomalous training windows weigh ``n_negative / n_positive``
(``pos_weight="balanced"``; validation and test rows are not weighted, so their figures count
windows); early stopping and the learning-rate schedule watch the validation F1
(:class:`~ml.training_pipeline.fitting.callbacks.ValidationF1`); the decision threshold is the one with
the best validation F1 and is stored with the model.

Evaluation on the test windows, at the stored threshold: accuracy, precision, recall, F1,
false-positive rate, ROC-AUC and PR-AUC, next to the training majority class and a LightGBM on
each window's event-count vector and aggregates (its own threshold chosen on validation too).

Example:
    >>> problem = LogAnomalyProblem("BGL_2k.log_structured.csv", "bgl")  # doctest: +SKIP
    >>> train(TrainingConfig(symbol="BGL", model_type="multimodal_transformer"), problem=problem)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ml.data import BUNDLED_LOGS, bundled_log_path
from ml.training_pipeline.common.metrics import anomaly_metrics, choose_threshold
from ml.training_pipeline.common.plots import plot_confusion_matrix
from ml.training_pipeline.models.kinds.base import FitData
from ml.training_pipeline.models.registry import DEFAULT_INPUT_NAME, TensorSpec
from ml.training_pipeline.models.tasks import Task, resolve_task
from ml.training_pipeline.problems.anomaly.follow import LogFollower
from ml.training_pipeline.problems.anomaly.formats import (
    LogEvents,
    LogFormat,
    get_log_format,
    is_raw_log,
    load_log_events,
)
from ml.training_pipeline.problems.anomaly.templates import LogTemplates
from ml.training_pipeline.problems.anomaly.windows import (
    AGGREGATE_FEATURES,
    DEFAULT_VALIDATION_BLOCKS,
    FLAG_FEATURES,
    NUMERIC_FEATURES,
    SEVERE_LEVELS,
    LogEncoder,
    Windowing,
    chronological_parts,
    distinct_lines,
    truncated,
    window_labels,
)
from ml.training_pipeline.problems.base import Problem, ProblemData, register_problem

SEQUENCE_INPUTS = ("numeric", "flags", "categorical", "padding_mask", "aggregates")
MIN_WINDOWS = 10
"""Fewest windows per part: fewer give figures that mean nothing."""
DEFAULT_THRESHOLD: str | float = "validation"
"""The decision threshold by default (benchmarks/log_anomaly.py shows the model at it and at 0.5 over seeds)."""


def _specs(encoded: dict[str, np.ndarray], vocab_size: int) -> tuple[TensorSpec, ...]:
    dtypes = {"categorical": "int32", "padding_mask": "bool"}
    return (*(TensorSpec(name, encoded[name].shape[1:], dtypes.get(name, "float32"),
                         vocab_size if name == "categorical" else None) for name in SEQUENCE_INPUTS),
            TensorSpec(DEFAULT_INPUT_NAME, encoded[DEFAULT_INPUT_NAME].shape[1:], "float32"))


def model_inputs(encoded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The encoder's arrays as the inputs offered to models: the multimodal ones, plus ``inputs``, the events'
    numbers and flags as one ``(events, 21)`` window for sequence classifiers that read a plain window."""
    return {**{name: encoded[name] for name in SEQUENCE_INPUTS},
            DEFAULT_INPUT_NAME: np.concatenate([encoded["numeric"], encoded["flags"]], axis=-1)}


def baseline_matrix(encoded: dict[str, np.ndarray]) -> np.ndarray:
    """The simple baselines' features: each window's event-count vector and its (scaled) aggregates."""
    return np.concatenate([encoded["counts"], encoded["aggregates"]], axis=1).astype(np.float32)


def _lightgbm_baseline(train_x, train_y, val_x, val_y, seed: int) -> dict[str, Any]:
    """LightGBM, positives weighted like the model's, early-stopped on validation log loss."""
    import lightgbm

    positives = max(float(train_y.sum()), 1.0)
    model = lightgbm.LGBMClassifier(n_estimators=400, learning_rate=0.05, num_leaves=15, min_child_samples=5,
                                    subsample=0.9, subsample_freq=1, colsample_bytree=0.9, reg_lambda=1.0,
                                    scale_pos_weight=(len(train_y) - positives) / positives, random_state=seed,
                                    deterministic=True, force_col_wise=True, n_jobs=2, verbose=-1)
    model.fit(train_x, train_y, eval_X=(val_x,), eval_y=(val_y,), callbacks=[lightgbm.early_stopping(50, verbose=False)])
    return {"kind": "lightgbm", "model": model.booster_.model_to_string()}


def _logistic_baseline(train_x, train_y, val_x, val_y, seed: int) -> dict[str, Any]:
    """Standardised L2 logistic regression with balanced class weights (its parameters fit in the schema)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = train_x.mean(axis=0), train_x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed)
    model.fit((train_x - mean) / scale, train_y)
    return {"kind": "logistic", "mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0])}


def _lightgbm_probability(spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    import lightgbm

    booster = lightgbm.Booster(model_str=spec["model"])
    return np.asarray(booster.predict(x, num_iteration=booster.best_iteration or None), np.float64).reshape(-1)


def _logistic_probability(spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    z = ((np.asarray(x, np.float64) - spec["mean"]) / spec["scale"]) @ np.asarray(spec["coef"]) + spec["intercept"]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


COUNT_BASELINES = {"lightgbm_counts": _lightgbm_baseline, "logistic_counts": _logistic_baseline}
"""Simple baselines on count vectors and aggregates: report name -> fit function (returns a JSON-ready spec)."""
_PROBABILITY = {"lightgbm": _lightgbm_probability, "logistic": _logistic_probability}
"""A stored spec's ``kind`` -> its probability function."""


def fit_count_baselines(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                        seed: int = 42) -> dict[str, dict[str, Any]]:
    """Each simple baseline fitted on the training windows, with its threshold of best validation F1 (JSON-ready)."""
    fitted = {}
    for name, fit in COUNT_BASELINES.items():
        spec = fit(train_x, train_y, val_x, val_y, seed)
        fitted[name] = {**spec, "threshold": choose_threshold(val_y, _PROBABILITY[spec["kind"]](spec, val_x))[0]}
    return fitted


def baseline_probabilities(baselines: dict[str, dict[str, Any]], x: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """``{name: (probability of each row, threshold)}`` of stored baselines."""
    return {name: (_PROBABILITY[spec["kind"]](spec, x), spec["threshold"]) for name, spec in baselines.items()}


def anomaly_report(probability: np.ndarray, y: np.ndarray, threshold: float, prior: float,
                   baselines: dict[str, tuple[np.ndarray, float]]) -> dict[str, Any]:
    """Model, majority class and the count-vector baselines on the same windows, each at its validation threshold."""
    majority = float(prior >= 0.5)
    report = {"model": anomaly_metrics(probability, y, threshold),
              # the same scores at a plain 0.5 (balanced class weights aim there): a threshold chosen on few
              # anomalous validation windows can be noise, and this row shows how much it cost or gained
              "model_at_0.5": anomaly_metrics(probability, y, 0.5),
              # the constant forecast: the training majority class, with the training positive rate as its probability
              "majority": anomaly_metrics(np.full(len(y), prior), y, 0.5 if majority else prior + 1e-9),
              **{name: anomaly_metrics(p, y, t) for name, (p, t) in baselines.items()},
              "n": int(len(y)), "positives": int(np.sum(y)), "threshold": float(threshold),
              "baseline_thresholds": {name: float(t) for name, (_, t) in baselines.items()}}
    return report


def rule_baselines(events, windows, train_rows, test_rows) -> dict[str, tuple[np.ndarray, float]]:
    """The rules an operator starts with, as ``{name: (0/1 score per test window, threshold 0.5)}``: a window
    holding a FATAL (or CRITICAL) line, and a window holding a template never seen in the training windows (the
    ``eventid`` field where the format has one, else the message text)."""
    frame = events.frame
    template = (frame["eventid"] if "eventid" in frame.columns else frame["content"]).astype(str).to_numpy()
    severe = frame["level"].astype(str).str.upper().isin(SEVERE_LEVELS).to_numpy()
    seen = set(template[np.concatenate([windows[r] for r in train_rows])])
    rules = {
        "rule_severe_line": np.array([float(severe[windows[r]].any()) for r in test_rows]),
        "rule_unseen_template": np.array([float(any(t not in seen for t in template[windows[r]])) for r in test_rows]),
    }
    return {name: (score, 0.5) for name, score in rules.items()}


class LogAnomalyProblem(Problem):
    """Windows of a labelled structured log; is any event of the window anomalous?

    Args:
        source: a structured log CSV, or :class:`~ml.training_pipeline.problems.anomaly.formats.LogEvents`.
        log_format: ``"bgl"``, ``"openstack"`` or a registered / custom :class:`LogFormat`.
        windowing: how events are grouped (default: fixed 5-minute windows, 128 events kept).
        anomalous_sessions: ids (or a file of ids) of anomalous sessions, for a format without a label column.
        pos_weight: weight of an anomalous training window: ``"balanced"`` (negatives / positives) or a number.
        validation_fraction, test_fraction: shares of the windows, in time order.
        threshold: the decision threshold: ``"validation"`` (the best F1 on the validation windows) or a
            probability in (0, 1), e.g. 0.5, where balanced class weights aim (the report shows the model at 0.5
            either way).
        log: called with progress lines while a big raw log is read and its templates mined.
        validation_blocks: validation as that many blocks spread over the time before the test part (1: the
            windows just before it; ``None``: :data:`~.windows.DEFAULT_VALIDATION_BLOCKS`); see
            :func:`~.windows.chronological_parts`.
    """

    type_name = "log_anomaly"
    name = "anomaly"

    def __init__(self, source: str | Path | LogEvents, log_format: str | LogFormat = "bgl",
                 windowing: Windowing | None = None, *, anomalous_sessions: Iterable[str] | str | Path | None = None,
                 pos_weight: float | str = "balanced", validation_fraction: float = 0.15, test_fraction: float = 0.15,
                 validation_blocks: int | None = None, threshold: str | float = DEFAULT_THRESHOLD,
                 log: Callable[[str], None] | None = None):
        self.log_format = get_log_format(log_format) if not isinstance(source, LogEvents) else source.log_format
        self.source, self.anomalous_sessions = source, anomalous_sessions
        self.windowing = windowing or Windowing()
        if not (pos_weight == "balanced" or (isinstance(pos_weight, (int, float)) and not isinstance(pos_weight, bool)
                                             and pos_weight > 0)):
            raise ValueError(f"pos_weight must be 'balanced' or a number > 0. Received: pos_weight={pos_weight!r}")
        self.pos_weight = pos_weight
        for label, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
            if not isinstance(value, float) or not 0.05 <= value <= 0.4:
                raise ValueError(f"{label} must be a float in [0.05, 0.4]. Received: {label}={value!r}")
        self.fractions = (validation_fraction, test_fraction)
        validation_blocks = DEFAULT_VALIDATION_BLOCKS if validation_blocks is None else validation_blocks
        if not isinstance(validation_blocks, int) or isinstance(validation_blocks, bool) or not 1 <= validation_blocks <= 20:
            raise ValueError(f"validation_blocks must be an int in [1, 20]. Received: validation_blocks={validation_blocks!r}")
        self.validation_blocks = validation_blocks
        if not (threshold == "validation" or (isinstance(threshold, float) and 0 < threshold < 1)):
            raise ValueError(f"threshold must be 'validation' or a probability in (0, 1). Received: threshold={threshold!r}")
        self.threshold = threshold
        self.log = log

    @property
    def task(self) -> Task:
        return resolve_task("binary")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "log_format": self.log_format.name, "windowing": self.windowing.to_dict(),
                "validation_blocks": self.validation_blocks, "threshold": self.threshold}

    def events(self) -> LogEvents:
        if isinstance(self.source, LogEvents):
            return self.source
        return load_log_events(self.source, self.log_format, anomalous_sessions=self.anomalous_sessions, log=self.log)

    def prepare(self, config) -> ProblemData:
        events = self.events()
        if not events.labelled:
            raise ValueError(f"{events.source} has no labels: the {self.log_format.name!r} format has no label column. "
                             "Accepted: a labelled format (e.g. bgl), or anomalous session ids "
                             "(--labels FILE, one id per line)")
        windows = self.windowing.windows(events.frame)
        times = events.frame["time"].to_numpy()
        parts, purged = chronological_parts(windows, times, self.fractions, self.validation_blocks)
        sizes = {name: len(rows) for name, rows in parts.items()}
        if min(sizes.values()) < MIN_WINDOWS:
            raise ValueError(f"Too few windows: {len(windows)} windows ({self.windowing.describe()}) give train/"
                             f"validation/test parts of {sizes['train']}/{sizes['validation']}/{sizes['test']}; each "
                             f"needs >= {MIN_WINDOWS}. Use shorter windows or a longer log")
        y = window_labels(events, windows)
        train_y = y[parts["train"]]
        if train_y.min() == train_y.max():
            which = "positive (anomalous)" if train_y.max() == 0 else "negative (normal)"
            raise ValueError(f"The training part has no {which} window: {len(train_y)} windows, all "
                             f"{'normal' if train_y.max() == 0 else 'anomalous'}. Accepted: a training part with both "
                             "classes (a longer log, other windows or another split)")
        train_windows = [windows[i] for i in parts["train"]]
        encoder = LogEncoder.fit(events, train_windows, self.windowing.max_events)
        encoded = encoder.encode(events, windows)
        inputs = model_inputs(encoded)
        positives = float(train_y.sum())
        weight = float(self.pos_weight) if self.pos_weight != "balanced" else (len(train_y) - positives) / positives
        fit = {name: FitData({k: v[rows] for k, v in inputs.items()}, y[rows].astype(np.float32),
                             np.where(y[rows] == 1, weight, 1.0) if name == "train" else None)
               for name, rows in parts.items()}
        matrix = baseline_matrix(encoded)
        baselines = fit_count_baselines(matrix[parts["train"]], train_y, matrix[parts["validation"]],
                                        y[parts["validation"]], config.seed)
        prior = float(train_y.mean())
        specs = _specs(inputs, encoder.vocab_size)
        counted = baseline_probabilities(baselines, matrix[parts["test"]])
        first_last = {name: [str(np.min([times[windows[i]].min() for i in rows]))[:26],
                             str(np.max([times[windows[i]].max() for i in rows]))[:26]] for name, rows in parts.items()}
        cut = truncated(windows, self.windowing.max_events)
        notes = [f"{len(windows)} windows: {self.windowing.describe()}; a window is anomalous when any event is labelled "
                 f"({int(y.sum())} anomalous, {y.mean():.1%})"]
        if events.lines is not None:
            read = events.lines
            notes.append(f"raw log: {read['lines']} lines, {read['events']} events ({read['continuation_lines']} "
                         f"continuation lines joined to the line before, {read['dropped_lines']} dropped); "
                         f"{len(events.templates)} Drain3 templates")
        if purged:
            notes.append(f"{purged} sliding windows across a split boundary dropped (no event in two parts)")
        if cut:
            notes.append(f"{cut} windows hold more than {self.windowing.max_events} events: the sequence inputs keep "
                         "the first ones; counts and aggregates see them all")
        schema = {
            "inputs": [s.to_dict() for s in specs], "target": self.name, "task": self.task.describe(),
            "log_format": self.log_format.name, "windowing": self.windowing.to_dict(), "encoder": encoder.to_dict(),
            "numeric_features": list(NUMERIC_FEATURES), "flag_features": list(FLAG_FEATURES[:encoder.flag_count]),
            "aggregate_features": list(AGGREGATE_FEATURES), "baselines": [prior], "threshold": 0.5,
            "count_baselines": baselines,
            "positive_weight": weight,
            # a raw log's Drain3 templates: serving matches new lines to them (None: a structured CSV's EventId)
            "templates": None if events.templates is None else events.templates.to_dict(),
        }
        return ProblemData(
            train=fit["train"], validation=fit["validation"], test=fit["test"], inputs=specs, schema=schema,
            data={**events.describe(), "timeframe": None, "windowing": self.windowing.describe(), "windows": len(windows),
                  "anomalous_windows": int(y.sum())},
            row_counts={**{f"{name}_windows": int(len(rows)) for name, rows in parts.items()},
                        "purged_windows": purged, "truncated_windows": cut,
                        **{f"anomalous_{name}": int(y[rows].sum()) for name, rows in parts.items()},
                        # overlapping windows repeat lines: how many distinct log lines each part really holds
                        **{f"{name}_lines": distinct_lines(windows, rows) for name, rows in parts.items()}},
            splits=first_last, notes=tuple(notes),
            context={"baseline_test": {**counted, **rule_baselines(events, windows, parts["train"], parts["test"]),
                                       # the count LR at a plain 0.5: few anomalous validation windows make its
                                       # chosen threshold noise
                                       **({"logistic_counts_at_0.5": (counted["logistic_counts"][0], 0.5)}
                                          if "logistic_counts" in counted else {})}},
            optional=tuple(s.name for s in specs),
            model_params={"vocab_size": encoder.vocab_size, "num_fields": len(encoder.fields),
                          "num_flags": len(FLAG_FEATURES), "num_aggregates": len(AGGREGATE_FEATURES)},
        )

    @classmethod
    def example(cls) -> tuple[LogAnomalyProblem, dict[str, Any]]:
        """Windows of the bundled BGL log sample (2,000 labelled lines)."""
        return cls(bundled_log_path("bgl"), "bgl"), {"symbol": "BGL", "model_type": "multimodal_transformer"}

    def fit_monitor(self, data: ProblemData) -> tuple[str, list]:
        from ml.training_pipeline.fitting.callbacks import (
            ValidationF1,  # imports Keras: only when a model is built or loaded
        )

        return "val_f1", [ValidationF1(data.validation.inputs, data.validation.y)]

    def fit_decision(self, validation_predictions: np.ndarray, data: ProblemData) -> ProblemData:
        if self.threshold == "validation":
            threshold, f1 = choose_threshold(data.validation.y, validation_predictions)
        else:
            threshold = self.threshold
            f1 = anomaly_metrics(np.asarray(validation_predictions).reshape(-1), data.validation.y, threshold)["f1"]
        return dataclasses.replace(data, schema={**data.schema, "threshold": threshold, "validation_f1": f1,
                                                 "threshold_policy": self.threshold})

    def to_prediction(self, outputs, data):
        return np.asarray(outputs, np.float64)[:, 0]

    def evaluate(self, predictions, data):
        return anomaly_report(predictions, data.test.y, data.schema["threshold"], data.schema["baselines"][0],
                              data.context["baseline_test"])

    def summary(self, report):
        return {"metric": "f1", "model": report["model"]["f1"], "baseline": report["majority"]["f1"],
                "lightgbm": report.get("lightgbm_counts", {}).get("f1", float("nan")),
                "logistic": report.get("logistic_counts", {}).get("f1", float("nan")),
                "fpr": report["model"]["false_positive_rate"], "threshold": report["threshold"]}

    @classmethod
    def summary_line(cls, m):
        return (f"f1 {m['model']:.3f} vs majority {m['baseline']:.3f} / lightgbm counts {m['lightgbm']:.3f} / "
                f"logistic counts {m.get('logistic', float('nan')):.3f} "
                f"(fpr {m['fpr']:.3f}, threshold {m['threshold']:.3g})")

    def plot(self, predictions, data, history, folder, title):
        super().plot(predictions, data, history, folder, title)
        plot_confusion_matrix(data.test.y, predictions >= data.schema["threshold"], folder / "confusion_matrix.png",
                              f"{title}: test windows at threshold {data.schema['threshold']:.3g}")

    # --- a stored model on a new log file ----------------------------------------------
    @classmethod
    def encode_file(cls, stored, data_path: str | Path, anomalous_sessions=None) -> tuple[LogEvents, list, dict]:
        """Events, windows and encoded arrays of a log file, exactly as the stored version encodes them."""
        schema = stored.schema
        if data_path is None:  # like the price models: the bundled sample of the model's format

            if schema["log_format"] not in BUNDLED_LOGS:
                raise ValueError(f"An anomaly model reads a log file. Accepted: --data FILE (a structured "
                                 f"{schema['log_format']!r} log)")
            data_path = bundled_log_path(schema["log_format"])
        stored_templates = schema.get("templates")
        if is_raw_log(data_path) != (stored_templates is not None):
            trained, accepted = (("a raw log (its Drain3 template ids)", "a raw log file") if stored_templates else
                                 ("a structured CSV (its EventId column)", f"a structured {schema['log_format']!r} "
                                                                          "log CSV"))
            raise ValueError(f"This model was trained on {trained}: the other kind of file names templates "
                             f"differently. Accepted: {accepted}. Received: {Path(data_path).name}")
        templates = None if stored_templates is None else LogTemplates.from_dict(stored_templates)
        events = load_log_events(data_path, schema["log_format"], anomalous_sessions=anomalous_sessions,
                                 templates=templates)
        windows = Windowing.from_dict(schema["windowing"]).windows(events.frame)
        if not windows:
            raise ValueError(f"{data_path} gives no window. Received: {len(events.frame)} events")
        return events, windows, LogEncoder.from_dict(schema["encoder"]).encode(events, windows)

    @classmethod
    def predict_file(cls, stored, data_path: str | Path | None, **options: Any) -> dict[str, Any]:
        if options.get("uncertainty"):
            raise ValueError("--uncertainty gives intervals of numeric targets; an anomaly model gives probabilities. "
                             "Received: --uncertainty for an anomaly model")
        events, windows, encoded = cls.encode_file(stored, data_path)
        probability = stored.predict({s.name: model_inputs(encoded)[s.name] for s in stored.inputs})[:, 0]
        threshold = float(stored.schema["threshold"])
        times = events.frame["time"]
        rows = [{"start": times.iloc[w.min()].isoformat(), "end": times.iloc[w.max()].isoformat(), "events": int(len(w)),
                 "probability": float(p), "anomalous": bool(p >= threshold)}
                for w, p in zip(windows, probability, strict=True)]
        flagged = sum(r["anomalous"] for r in rows)
        last = rows[-1]
        return {**stored.identity(), "target": cls.name, "as_of": last["end"], "threshold": threshold,
                "windows": rows, "flagged": flagged, "data": events.describe(),
                "text": f"{flagged} of {len(rows)} windows anomalous (probability >= {threshold:.3g}); last window "
                        f"{'ANOMALOUS' if last['anomalous'] else 'normal'} (p={last['probability']:.3f}, "
                        f"{last['events']} events)",
                "notes": []}

    @classmethod
    def follow_file(cls, stored, data_path: str | Path, emit, *, until_idle: float | None = None, poll_s: float = 1.0,
                    from_start: bool = False) -> dict[str, Any]:
        """Scores a growing raw log as lines are appended (:class:`~.follow.LogFollower`), calling ``emit`` with each
        anomalous window (its times, probability and top lines) until Ctrl-C or ``until_idle`` quiet seconds."""
        def score(encoded):
            return stored.predict({s.name: model_inputs(encoded)[s.name] for s in stored.inputs})[:, 0]

        follower = LogFollower(stored.schema, data_path, score, from_start=from_start)
        return {**stored.identity(), "threshold": follower.threshold,
                **follower.follow(emit, poll_s=poll_s, until_idle=until_idle)}

    @classmethod
    def evaluate_file(cls, stored, data_path: str | Path | None) -> dict[str, Any]:
        events, windows, encoded = cls.encode_file(stored, data_path)
        if not events.labelled:
            raise ValueError(f"{data_path} has no labels to evaluate against. Accepted: a labelled "
                             f"{stored.schema['log_format']!r} log")
        y = window_labels(events, windows)
        probability = stored.predict({s.name: model_inputs(encoded)[s.name] for s in stored.inputs})[:, 0]
        report = anomaly_report(probability, y, stored.schema["threshold"], stored.schema["baselines"][0],
                                baseline_probabilities(stored.schema["count_baselines"], baseline_matrix(encoded)))
        # windows inside the span the model was fitted or early-stopped on are in-sample
        splits = stored.metadata.get("splits", {})
        seen = (np.datetime64(splits["train"][0]), np.datetime64(splits["validation"][1])) if splits else None
        times = events.frame["time"].to_numpy()
        in_sample = 0 if seen is None else int(sum(times[w].min() <= seen[1] and times[w].max() >= seen[0]
                                                   for w in windows))
        return {**stored.identity(), "target": cls.name, "data": events.describe(), "report": report,
                "in_sample_bars": in_sample, "unit": "windows", "model_fitted_on": [str(t) for t in seen] if seen else [],
                "notes": []}


register_problem(LogAnomalyProblem)
