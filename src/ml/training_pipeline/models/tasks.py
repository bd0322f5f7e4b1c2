"""Prediction tasks: each one owns its output head, loss, metrics and target checks.

A task is an object, so adding one (say, a ranking head) is a new class plus one line in
:data:`TASK_TYPES`; nothing else in the library asks ``if task == ...``.

Tasks:
    regression: linear head with ``output_dim`` units, MSE.
    binary: one sigmoid unit, binary cross-entropy.
    multiclass: ``num_classes`` softmax units, sparse categorical cross-entropy.
    quantile: one unit per quantile, ordered by construction, pinball loss.
    positive: one strictly positive unit (``exp`` of a linear unit), a log-space loss
        (log2-MSE by default) for targets like a height or a volatility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ml.training_pipeline.common.arguments import unknown_name_error
from ml.training_pipeline.common.metrics import classification_metrics


def _weights(weight: np.ndarray | None, rows: int) -> np.ndarray:
    return np.ones(rows) if weight is None else np.asarray(weight, dtype=np.float64)


def _class_frequencies(y: np.ndarray, weight: np.ndarray | None, classes: int) -> np.ndarray:
    """Weighted share of each class id among the rows: the constant forecast of a classifier."""
    w = _weights(weight, len(y))
    return np.bincount(np.asarray(y).astype(int), weights=w, minlength=classes) / w.sum()


def _check_int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}. Received: {name}={value!r}")
    return value


@dataclass(frozen=True)
class Task:
    """Base class: the head, loss and metrics of one kind of prediction.

    Attributes:
        task: the task name (``"regression"``, ...).
        units: width of the output layer.
        activation: activation of the output ``Dense`` layer.
    """

    name: ClassVar[str] = ""
    estimator_type: ClassVar[str | None] = None
    """``"regressor"`` or ``"classifier"`` when a tree estimator can learn it, else ``None``."""
    log_space: ClassVar[bool] = False
    """Whether targets are compared (and interpolated) in log space."""
    has_intervals: ClassVar[bool] = True
    """Whether a central interval of the prediction means something (not for class probabilities)."""

    task: str = ""
    units: int = 1
    activation: str = "linear"

    def head(self, features, name: str = "head"):
        """Puts the output layer on the feature tensor (float32, safe under mixed precision)."""
        import keras

        return keras.layers.Dense(self.units, activation=self.activation, dtype="float32", name=name)(features)

    def loss(self) -> Any:
        raise NotImplementedError

    @property
    def metrics(self) -> tuple[Any, ...]:
        """Metric names or objects (built fresh on each access: Keras metrics hold state)."""
        return ()

    def check_targets(self, y: np.ndarray, where: str = "y") -> np.ndarray:
        """Validates a target array for this task and returns it as the model is fitted on it."""
        y = np.asarray(y)
        if not np.issubdtype(y.dtype, np.number) or y.dtype == bool:
            raise ValueError(f"{where} must be numeric for task={self.task!r}. Received dtype={y.dtype}")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{where} contains NaN or inf. Received {int(np.sum(~np.isfinite(y)))} non-finite targets")
        return y.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly form for metadata and the feature schema."""
        return {"task": self.task, "units": self.units}

    def constant_baseline(self, y: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """The best constant prediction on (weighted) training targets: the naive forecast to beat.

        Regression: the mean. Subclasses: class frequencies, empirical quantiles, the geometric mean.
        """
        y, w = np.asarray(y, np.float64), _weights(weight, len(y))
        return np.average(y.reshape(len(y), -1), axis=0, weights=w)

    def score(self, predictions: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> dict[str, float]:
        """Test metrics of predictions in target units (weighted when ``weight`` is given); the first is the headline.

        Regression: RMSE and MAE (of the mean over the outputs).
        """
        y = np.asarray(y, np.float64)
        error = (np.asarray(predictions).reshape(len(y), -1) - y.reshape(len(y), -1)).mean(axis=1)
        return {"rmse": float(np.sqrt(np.average(error**2, weights=weight))),
                "mae": float(np.average(np.abs(error), weights=weight))}

    @property
    def loss_name(self) -> str:
        loss = self.loss()
        return loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__)


@dataclass(frozen=True)
class RegressionTask(Task):
    name: ClassVar[str] = "regression"
    estimator_type: ClassVar[str | None] = "regressor"

    def loss(self):
        return "mse"

    @property
    def metrics(self):
        import keras

        return ("mae", keras.metrics.RootMeanSquaredError(name="rmse"))


@dataclass(frozen=True)
class BinaryTask(Task):
    name: ClassVar[str] = "binary"
    has_intervals: ClassVar[bool] = False
    estimator_type: ClassVar[str | None] = "classifier"

    def loss(self):
        return "binary_crossentropy"

    @property
    def metrics(self):
        return ("accuracy",)

    def constant_baseline(self, y, weight=None):
        return _class_frequencies(y, weight, 2)[1:2]  # P(positive)

    def score(self, predictions, y, weight=None):
        predictions = np.asarray(predictions, np.float64).reshape(-1)
        return classification_metrics(predictions >= 0.5, y, predictions, weight)

    def check_targets(self, y, where="y"):
        y = super().check_targets(y, where)
        bad = np.setdiff1d(np.unique(y), [0.0, 1.0])
        if bad.size:
            raise ValueError(f"{where} must hold 0/1 labels for task='binary'. Received a value {bad[0]!r}")
        return y


@dataclass(frozen=True)
class MulticlassTask(Task):
    name: ClassVar[str] = "multiclass"
    has_intervals: ClassVar[bool] = False
    estimator_type: ClassVar[str | None] = "classifier"

    def loss(self):
        return "sparse_categorical_crossentropy"

    @property
    def metrics(self):
        return ("accuracy",)

    def constant_baseline(self, y, weight=None):
        return _class_frequencies(y, weight, self.units)

    def score(self, predictions, y, weight=None):
        from sklearn.metrics import log_loss

        predictions = np.asarray(predictions, np.float64)
        return {"accuracy": float(np.average(predictions.argmax(axis=1) == y, weights=weight)),
                "log_loss": float(log_loss(y, np.clip(predictions, 1e-7, 1), labels=list(range(self.units)),
                                           sample_weight=weight))}

    def check_targets(self, y, where="y"):
        y = super().check_targets(y, where)
        if np.any(y != np.round(y)) or y.min() < 0 or y.max() >= self.units:
            raise ValueError(f"{where} must hold class ids 0..{self.units - 1} for task='multiclass'. "
                             f"Received values in [{y.min():g}, {y.max():g}]")
        return y.astype(np.int32)


@dataclass(frozen=True)
class QuantileTask(Task):
    """One output per quantile; a cumulative-softplus head keeps them ordered (no crossing)."""

    name: ClassVar[str] = "quantile"
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)

    def head(self, features, name: str = "head"):
        import keras

        from ml.training_pipeline.layers import OrderedQuantiles  # imports Keras: only when a model is built or loaded

        raw = keras.layers.Dense(self.units, dtype="float32", name=f"{name}_raw")(features)
        return OrderedQuantiles(dtype="float32", name=name)(raw)

    def loss(self):
        from ml.training_pipeline.models.losses import (
            PinballLoss,  # imports Keras: only when a model is built or loaded
        )

        return PinballLoss(self.quantiles)

    def describe(self):
        return {**super().describe(), "quantiles": list(self.quantiles)}

    def constant_baseline(self, y, weight=None):
        y, w = np.asarray(y, np.float64), _weights(weight, len(y))
        order = np.argsort(y)
        cumulative = np.cumsum(w[order]) / w.sum()
        return np.array([y[order][min(np.searchsorted(cumulative, q), len(y) - 1)] for q in self.quantiles])

    def score(self, predictions, y, weight=None):
        y, predictions = np.asarray(y, np.float64), np.asarray(predictions, np.float64)
        error = y[:, None] - predictions
        q = np.asarray(self.quantiles)
        pinball = np.maximum(q * error, (q - 1) * error).mean(axis=1)
        return {"pinball": float(np.average(pinball, weights=weight)),
                "coverage": float(np.average((y >= predictions[:, 0]) & (y <= predictions[:, -1]), weights=weight))}


@dataclass(frozen=True)
class PositiveTask(Task):
    """A strictly positive target learned in log space, scored by log2-MSE.

    Head: ``exp`` of a linear unit, or with ``minimum`` set, ``minimum * 2 ** softplus(z)`` (never
    below the floor: the m-height, for instance, is >= 1).
    """

    name: ClassVar[str] = "positive"
    estimator_type: ClassVar[str | None] = None
    log_space: ClassVar[bool] = True
    minimum: float | None = None

    def head(self, features, name: str = "head"):
        if self.minimum is None:
            return super().head(features, name)
        import keras

        from ml.training_pipeline.layers import (
            Log2SoftplusPositive,  # imports Keras: only when a model is built or loaded
        )

        raw = keras.layers.Dense(1, dtype="float32", name=f"{name}_log2")(features)
        return Log2SoftplusPositive(self.minimum, dtype="float32", name=name)(raw)

    def describe(self):
        return {**super().describe(), **({"minimum": self.minimum} if self.minimum is not None else {})}

    def constant_baseline(self, y, weight=None):
        """The geometric mean: the best constant for log2-MSE."""
        y = np.asarray(y, np.float64)
        return np.array([np.exp(np.average(np.log(y), weights=_weights(weight, len(y))))])

    def score(self, predictions, y, weight=None):
        y, predictions = np.asarray(y, np.float64), np.asarray(predictions, np.float64).reshape(-1)
        log_error = np.log2(np.maximum(predictions, 1e-12)) - np.log2(y)
        return {"log2_mse": float(np.average(log_error**2, weights=weight)),
                "rmse": float(np.sqrt(np.average((predictions - y) ** 2, weights=weight)))}

    def loss(self):
        from ml.training_pipeline.models.losses import Log2MSE  # imports Keras: only when a model is built or loaded

        return Log2MSE()

    @property
    def metrics(self):
        from ml.training_pipeline.models.losses import (
            Log2MSEMetric,  # imports Keras: only when a model is built or loaded
        )

        return (Log2MSEMetric(), "mae")

    def check_targets(self, y, where="y"):
        y = super().check_targets(y, where)
        if np.any(y <= 0):
            raise ValueError(f"{where} must be > 0 for task='positive' (log2-MSE). Received a value {float(y.min())!r}")
        if self.minimum is not None and np.any(y < self.minimum):
            raise ValueError(f"{where} must be >= minimum={self.minimum:g} for this task. Received a value {float(y.min())!r}")
        return y


TASK_TYPES: dict[str, type[Task]] = {cls.name: cls for cls in
                                     (RegressionTask, BinaryTask, MulticlassTask, QuantileTask, PositiveTask)}
TASKS: tuple[str, ...] = tuple(TASK_TYPES)

TaskSpec = Task  # the name older code imported


_ARGUMENT_OWNER = {"output_dim": "regression", "num_classes": "multiclass", "quantiles": "quantile",
                   "minimum": "positive"}
"""Task argument -> the one task it applies to."""


def resolve_task(
    task: str | Task,
    *,
    output_dim: int | None = None,
    num_classes: int | None = None,
    quantiles: Sequence[float] | None = None,
    minimum: float | None = None,
) -> Task:
    """Validates the task arguments and returns the :class:`Task` to use.

    ``output_dim`` is only for regression (default 1), ``num_classes`` only for, and
    required by, multiclass, ``quantiles`` only for quantile (default 0.1, 0.5, 0.9),
    ``minimum`` only for positive (a floor the output never goes below).
    Passing one to another task raises instead of being ignored.

    Example:
        >>> resolve_task("multiclass", num_classes=3).activation
        'softmax'
        >>> resolve_task("quantile", quantiles=[0.05, 0.5, 0.95]).units
        3
    """
    if isinstance(task, Task):
        return task
    if task not in TASK_TYPES:
        raise unknown_name_error("task", task, TASKS)
    given = {"output_dim": output_dim, "num_classes": num_classes, "quantiles": quantiles, "minimum": minimum}
    for arg, owner in _ARGUMENT_OWNER.items():
        if owner != task and given[arg] is not None:
            raise ValueError(f"{arg} applies to task={owner!r} only. Received: task={task!r}, {arg}={given[arg]!r}")
    if task == RegressionTask.name:
        units = 1 if output_dim is None else output_dim
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"output_dim must be an int >= 1. Received: output_dim={output_dim!r}")
        return RegressionTask(task, units, "linear")
    if task == MulticlassTask.name:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"task='multiclass' needs num_classes, an int >= 2. Received: num_classes={num_classes!r}")
        return MulticlassTask(task, num_classes, "softmax")
    if task == QuantileTask.name:
        qs = (0.1, 0.5, 0.9) if quantiles is None else quantiles
        try:
            qs = tuple(float(q) for q in qs)
        except (TypeError, ValueError):
            qs = ()
        if not qs or not all(0 < q < 1 for q in qs) or list(qs) != sorted(set(qs)):
            raise ValueError(f"quantiles must be increasing values in (0, 1). Received: quantiles={quantiles!r}")
        return QuantileTask(task, len(qs), "linear", qs)
    if task == BinaryTask.name:
        return BinaryTask(task, 1, "sigmoid")
    if minimum is not None and (isinstance(minimum, bool) or not isinstance(minimum, (int, float)) or not minimum > 0):
        raise ValueError(f"minimum must be a number > 0. Received: minimum={minimum!r}")
    return PositiveTask(task, 1, "exponential", None if minimum is None else float(minimum))
