"""A user's own data as a problem: named input arrays (or DataFrame columns), a target, optional
groups and weights, and a task; trained, evaluated, exported and stored by the same ``train``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml.data import bundled_sample_path
from ml.training_pipeline.common.metrics import LOWER_IS_BETTER, group_summary
from ml.training_pipeline.common.plots import plot_group_metric
from ml.training_pipeline.common.sample_weights import GroupWeights, check_group_weights, class_weights, sample_weights
from ml.training_pipeline.common.tensors import take_rows
from ml.training_pipeline.common.windows import check_target_varies
from ml.training_pipeline.models.kinds.base import FitData
from ml.training_pipeline.models.registry import DEFAULT_INPUT_NAME, TensorSpec
from ml.training_pipeline.models.tasks import Task, resolve_task
from ml.training_pipeline.problems.augmentation import interpolate_within_groups
from ml.training_pipeline.problems.base import Problem, ProblemData, check_weights, register_problem

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _dtype_name(array: np.ndarray) -> str:
    if array.dtype.kind == "b":
        return "bool"
    if array.dtype.kind in "iu":
        return "int32"
    if array.dtype.kind == "f":
        return "float32"
    raise ValueError(f"inputs must be numeric or boolean arrays. Received dtype={array.dtype}")


class ArraysProblem(Problem):
    """Named arrays in, one target out; splits in row order (or shuffled with a seed).

    Baselines: the training mean (regression), the training majority class with the training
    class frequencies as probabilities (binary, multiclass), the training geometric mean
    (positive), the training empirical quantiles (quantile). Sample weights are normalised
    to mean 1 over the training rows and weigh the loss, the metrics and the baselines; per-group
    metrics leave out groups whose test rows all weigh 0.

    Args:
        inputs: ``{input name: array}`` with one row per sample (dtypes: float, int ids, bool masks).
        target: one value per row.
        task: ``regression``, ``binary``, ``multiclass``, ``quantile`` or ``positive``.
        name: the problem's store key (lower case letters, digits, ``_``, ``-``).
        groups: optional group label per row (reported per group; used by ``group_weights``).
        weights: optional non-negative weight per row.
        group_weights: ``{group: weight}``, ``"balanced"`` (inverse group frequency on the training rows) or a
            callable ``group -> weight``, multiplied into ``weights`` (see :mod:`ml.training_pipeline.common.sample_weights`).
        pos_weight: binary task: weight of a positive row relative to a negative (a number or ``"balanced"``).
        interpolate: add this fraction of extra training rows, each interpolated between two training rows
            of one group (needs groups; see :mod:`ml.training_pipeline.problems.augmentation`); 0 = off.
        validation_fraction, test_fraction: split sizes.
        shuffle: shuffle rows (seeded by the config) before splitting; off for time-ordered data.
        **task_kwargs: ``num_classes``, ``output_dim`` or ``quantiles`` for the task.

    Example:
        >>> problem = ArraysProblem({"window": x, "ids": ids}, y, task="regression", name="shops")  # doctest: +SKIP
        >>> train(TrainingConfig(symbol="SHOPS", model_type="embedding_lstm"), problem=problem)  # doctest: +SKIP
    """

    type_name = "arrays"

    def __init__(self, inputs: Mapping[str, Any] | np.ndarray, target: Any, task: str = "regression", *,
                 name: str = "arrays", groups: Any = None, weights: Any = None,
                 group_weights: GroupWeights | None = None, pos_weight: float | str | None = None,
                 interpolate: float = 0.0, validation_fraction: float = 0.15,
                 test_fraction: float = 0.15, shuffle: bool = False, **task_kwargs: Any):
        if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS or len(name) > 32 or name[0] in "_-":
            raise ValueError("name must be 1-32 lower-case letters, digits, '_' or '-' (no path characters). "
                             f"Received: name={name!r}")
        self._name = name
        self._task = resolve_task(task, **task_kwargs)
        arrays = dict(inputs) if isinstance(inputs, Mapping) else {DEFAULT_INPUT_NAME: inputs}
        if not arrays:
            raise ValueError("inputs must name at least one array. Received: {}")
        self.arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
        rows = {k: len(v) if v.ndim else 0 for k, v in self.arrays.items()}
        y = np.asarray(target)
        rows["target"] = len(y) if y.ndim else 0
        if len(set(rows.values())) != 1 or rows["target"] == 0:
            raise ValueError(f"inputs and target must have the same number of rows (> 0). Received: {rows}")
        self.input_specs = tuple(TensorSpec(k, v.shape[1:], _dtype_name(v)) for k, v in self.arrays.items())
        self.y = self._task.check_targets(y, where="target")
        n = len(self.y)
        self.groups = None if groups is None else self._check_groups(groups, n)
        self.weights = None if weights is None else check_weights(weights, n)
        if group_weights is not None:
            if self.groups is None:
                raise ValueError("group_weights needs groups. Received: groups=None")
            check_group_weights(group_weights, self.groups)
        if pos_weight is not None:
            class_weights(self.y, pos_weight)  # the labels and the value are checked now, not after loading
        self.group_weights, self.pos_weight = group_weights, pos_weight
        if isinstance(interpolate, bool) or not isinstance(interpolate, (int, float)) or not 0 <= interpolate <= 10:
            raise ValueError(f"interpolate must be a number in [0, 10]. Received: interpolate={interpolate!r}")
        if interpolate and self.groups is None:
            raise ValueError("interpolate mixes rows of one group and needs groups. Received: groups=None")
        self.interpolate = float(interpolate)
        for label, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
            if not isinstance(value, float) or not 0.05 <= value <= 0.4:
                raise ValueError(f"{label} must be a float in [0.05, 0.4]. Received: {label}={value!r}")
        self.fractions = (validation_fraction, test_fraction)
        self.shuffle = bool(shuffle)

    @classmethod
    def example(cls) -> tuple[ArraysProblem, dict[str, Any]]:
        """A user's own arrays: the bundled BTCUSDT bars' relative range and volume -> the next bar's absolute
        log return, grouped by weekday (rows in time order, so the parts are chronological)."""
        import pandas as pd


        bars = pd.read_csv(bundled_sample_path()).tail(2000)
        log_close = np.log(bars["close"].to_numpy(np.float64))
        x = np.stack([np.log(bars["high"] / bars["low"]), np.log1p(bars["volume"])], axis=1)[:-1].astype(np.float32)
        y = np.abs(np.diff(log_close))
        weekday = pd.to_datetime(bars["time"].to_numpy()[:-1], unit="ms").weekday.to_numpy()
        return cls(x, y, name="range-volume", groups=weekday), {"symbol": "ARRAYS", "model_type": "lightgbm"}

    @classmethod
    def from_frame(cls, frame, target: str, features: Sequence[str] | None = None, *, group: str | None = None,
                   weight: str | None = None, **kwargs: Any) -> ArraysProblem:
        """A problem from DataFrame columns: the feature columns become one float input named ``inputs``.

        Example:
            >>> ArraysProblem.from_frame(df, target="y", group="shop", task="regression")  # doctest: +SKIP
        """
        named = [target, *(c for c in (group, weight) if c)]
        missing = [c for c in [*named, *(features or [])] if c not in frame.columns]
        if missing:
            raise ValueError(f"Column {missing[0]!r} is not in the frame. Received columns: {list(frame.columns)}")
        features = list(features) if features is not None else [c for c in frame.columns if c not in named]
        values = frame[features]
        non_numeric = [c for c in features if values[c].dtype.kind not in "fiub"]
        if non_numeric:
            raise ValueError(f"Feature column {non_numeric[0]!r} is not numeric. Received dtype={values[non_numeric[0]].dtype}")
        return cls({DEFAULT_INPUT_NAME: values.to_numpy(np.float32)}, frame[target].to_numpy(),
                   groups=None if group is None else frame[group].to_numpy(),
                   weights=None if weight is None else frame[weight].to_numpy(), **kwargs)

    @staticmethod
    def _check_groups(groups: Any, n: int) -> np.ndarray:
        array = np.asarray(groups, dtype=object).reshape(-1)
        if len(array) != n:
            raise ValueError(f"groups must have one value per row ({n}). Received: {len(array)} values")
        missing = [i for i, g in enumerate(array) if g is None or (isinstance(g, float) and np.isnan(g))]
        if missing:
            raise ValueError(f"groups must not have missing values. Received {len(missing)} missing, first at row {missing[0]}")
        return np.asarray([str(g) for g in array])

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._name

    @property
    def task(self) -> Task:
        return self._task

    def prepare(self, config) -> ProblemData:
        n = len(self.y)
        order = np.random.default_rng(config.seed).permutation(n) if self.shuffle else np.arange(n)
        n_val, n_test = int(n * self.fractions[0]), int(n * self.fractions[1])
        n_train = n - n_val - n_test
        if min(n_train, n_val, n_test) < 10:
            raise ValueError(f"Too few rows: {n} rows give train/validation/test parts of {n_train}/{n_val}/{n_test}; "
                             "each needs >= 10")
        parts = {"train": order[:n_train], "validation": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}

        # a rare class (1% anomalies) is a real problem; only a target with no variation at all is refused
        check_target_varies(self.y[parts["train"]], max_share=None)
        weights = sample_weights(n, groups=self.groups, group_spec=self.group_weights, y=self.y,
                                 pos_weight=self.pos_weight, base=self.weights, fit_rows=parts["train"])
        fit = {name: FitData(take_rows(self.arrays, idx), self.y[idx], None if weights is None else weights[idx],
                             None if self.groups is None else self.groups[idx])
               for name, idx in parts.items()}
        # baselines from the real training rows only (interpolated rows are not evidence of the prior)
        schema = {"inputs": [s.to_dict() for s in self.input_specs], "target": self.name,
                  "task": self.task.describe(), "baselines": self._baseline_outputs(fit["train"]).tolist()}
        if self.groups is not None:
            # each group's own training prior: the naive forecast that knows the group
            train = fit["train"]
            schema["group_baselines"] = {
                str(g): self._baseline_outputs(FitData({}, train.y[train.groups == g],
                                                       None if train.weight is None else train.weight[train.groups == g])
                                               ).tolist()
                for g in np.unique(train.groups)
                if train.weight is None or train.weight[train.groups == g].sum() > 0}
        augmented = self._augment(fit["train"], config.seed) if self.interpolate else None
        if augmented is not None:
            fit["train"] = augmented[0]
        return ProblemData(
            train=fit["train"], validation=fit["validation"], test=fit["test"], inputs=self.input_specs,
            schema=schema, data={"source": "arrays", "rows": n, "inputs": [s.to_dict() for s in self.input_specs],
                                 "groups": None if self.groups is None else int(len(np.unique(self.groups))),
                                 "weighted": weights is not None,
                                 **({"augmentation": augmented[1]} if augmented else {})},
            row_counts={**{f"{name}_rows": int(len(idx)) for name, idx in parts.items()},
                        **({"augmented_rows": augmented[1]["accepted"]} if augmented else {})},
            splits={name: [f"row {int(idx.min())}", f"row {int(idx.max())}"] for name, idx in parts.items()},
            context=parts)

    def _baseline_outputs(self, train: FitData) -> np.ndarray:
        """The constant prediction the model must beat, learned on the (weighted) training rows."""
        return self.task.constant_baseline(train.y, train.weight)

    def to_prediction(self, outputs, data):
        outputs = np.asarray(outputs, dtype=np.float64)
        return outputs if outputs.shape[1] > 1 else outputs[:, 0]

    def _metrics(self, predictions: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
        return self.task.score(predictions, y, w)

    def _augment(self, train: FitData, seed: int) -> tuple[FitData, dict[str, Any]]:
        """The training rows plus rows interpolated within each group (the originals come first)."""
        extra = interpolate_within_groups(train.inputs, train.y, train.groups, int(round(self.interpolate * len(train))),
                                          seed=seed, log_target=self.task.log_space)
        joined = FitData({k: np.concatenate([v, extra.inputs[k]]) for k, v in train.inputs.items()},
                         np.concatenate([train.y, extra.y]),
                         None if train.weight is None else np.concatenate([train.weight, train.weight[extra.parents]]),
                         np.concatenate([train.groups, extra.groups]))
        return joined, {"kind": "interpolation within groups", "fraction": self.interpolate, **extra.report}

    @staticmethod
    def _constant(values, rows: int) -> np.ndarray:
        baseline = np.repeat(np.asarray(values, dtype=np.float64)[None], rows, axis=0)
        return baseline if baseline.shape[1] > 1 else baseline[:, 0]

    def evaluate(self, predictions, data):
        test = data.test
        y = test.y.astype(np.float64)
        report = {"model": self._metrics(predictions, y, test.weight),
                  "train_prior": self._metrics(self._constant(data.schema["baselines"], len(y)), y, test.weight),
                  "n": int(len(y)), "weighted": test.weight is not None}
        headline = next(iter(report["model"]))
        if headline in LOWER_IS_BETTER:  # an error metric: skill = 1 - model / prior
            report["error_metric"] = headline
            report["skill_train_prior"] = 1.0 - report["model"][headline] / report["train_prior"][headline] \
                if report["train_prior"][headline] > 0 else 0.0
        if test.groups is None:
            return report
        known = data.schema.get("group_baselines", {})
        group_prior = np.stack([self._constant(known.get(g, data.schema["baselines"]), 1)[0] for g in test.groups]) \
            if len(y) else np.zeros(0)
        report["group_prior"] = self._metrics(group_prior, y, test.weight)
        by_group = {}
        for g in np.unique(test.groups):
            rows = test.groups == g
            w = None if test.weight is None else test.weight[rows]
            if rows.sum() < 2 or (w is not None and w.sum() <= 0):
                continue  # one row, or rows that all weigh 0, give no meaningful figure
            by_group[str(g)] = {"model": self._metrics(predictions[rows], y[rows], w),
                                "train_prior": self._metrics(self._constant(data.schema["baselines"], int(rows.sum())),
                                                             y[rows], w),
                                "group_prior": self._metrics(group_prior[rows], y[rows], w), "n": int(rows.sum())}
        report["by_group"] = by_group
        report["groups"] = group_summary({g: r["model"][headline] for g, r in by_group.items()}, headline)
        return report

    def plot(self, predictions, data, history, folder, title):
        super().plot(predictions, data, history, folder, title)
        report = self.evaluate(predictions, data)
        if report.get("by_group"):
            plot_group_metric(report, folder / "per_group.png", title)

    def summary(self, report):
        headline = next(iter(report["model"]))
        summary = {"metric": headline, "model": report["model"][headline], "baseline": report["train_prior"][headline]}
        if report.get("groups", {}).get("worst") is not None:
            summary.update(group_prior=report["group_prior"][headline], worst_group=report["groups"]["worst"],
                           worst_value=report["groups"]["worst_value"])
        return summary

    @classmethod
    def summary_line(cls, m):
        line = f"{m['metric']} {m['model']:.4g} vs train prior {m['baseline']:.4g}"
        if "worst_group" in m:
            line += f" / group prior {m['group_prior']:.4g}, worst group {m['worst_group']} {m['worst_value']:.4g}"
        return line


register_problem(ArraysProblem)
