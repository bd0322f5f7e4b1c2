"""The interface every model-kind adapter implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.training_pipeline.models.registry import ModelSpec, TensorSpec
from ml.training_pipeline.models.tasks import Task

SAMPLING, QUANTILES = "sampling", "quantiles"
"""The two sources of predictive uncertainty a kind can report (:meth:`ModelKind.uncertainty_method`)."""


@dataclass(frozen=True)
class LinearOffset:
    """A fixed linear baseline the model adds to its output: ``inputs[input_name] @ weights + bias``.

    A problem whose strongest baseline is linear in some per-window columns (volatility: HAR-RV) gives
    its models this, so they learn the correction to the baseline and the stored model (and its ONNX
    export) still returns the full forecast. Weights and bias are in the model's output units (the
    fit space, after target scaling).

    Example:
        >>> offset = LinearOffset("baseline", (0.5, 0.25), 1.0, ("a", "b"))
        >>> offset.apply(np.array([[2.0, 4.0]])).tolist()
        [3.0]
    """

    input_name: str
    weights: tuple[float, ...]
    bias: float
    columns: tuple[str, ...] = ()
    """Names of the input's columns, for reports."""

    def apply(self, baseline_inputs: np.ndarray) -> np.ndarray:
        """The baseline's value per row."""
        return np.asarray(baseline_inputs, np.float64) @ np.asarray(self.weights, np.float64) + self.bias

    def to_dict(self) -> dict[str, Any]:
        return {"input_name": self.input_name, "weights": list(self.weights), "bias": self.bias,
                "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearOffset:
        return cls(data["input_name"], tuple(data["weights"]), float(data["bias"]), tuple(data.get("columns", ())))


@dataclass(frozen=True)
class FitData:
    """Named inputs, targets and optional per-row weights of one split.

    Attributes:
        inputs: ``{input name: array}`` with the same number of rows each.
        y: targets as the model is fitted on them.
        weight: per-row sample weights (mean 1 over the training rows), or ``None``.
    """

    inputs: Mapping[str, np.ndarray]
    y: np.ndarray
    weight: np.ndarray | None = None
    groups: np.ndarray | None = None
    """The group label (str) of each row, when the problem has groups (symbols, (k, m) classes...)."""

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class FitSettings:
    """How long and how to fit; each kind reads what applies to it."""

    epochs: int | None = None
    """Most epochs (Keras; ``None``: 80) or boosting rounds (LightGBM; ``None``: the preset's ``n_estimators``)."""
    batch_size: int = 128
    steps_per_epoch: int | None = None
    """Batches per epoch from the repeated, reshuffled training set (Keras); ``None``: one pass per epoch."""
    patience: int = 10
    seed: int = 42
    verbose: int = 0
    callbacks: Sequence[Any] | None = None
    """Extra callbacks, appended to the kind's own early stopping and learning-rate schedule."""
    callback_settings: Mapping[str, Any] | None = None
    """The family's tuning of those (``ModelSpec.callback_settings``)."""
    monitor: str = "val_loss"
    """What early stopping and the learning-rate schedule watch (``val_f1`` is maximised, losses minimised)."""
    monitor_callbacks: Sequence[Any] = ()
    """Callbacks that write ``monitor`` into the epoch logs (e.g. ``ValidationF1``); they run first."""
    phases: Sequence[Any] | None = None
    """Curriculum phases (``curriculum.Phase``); the training rows' ``groups`` pick each phase's rows."""
    resume: Any = None
    """A :class:`~ml.training_pipeline.fitting.resume.ResumePlan`: back the training state up after every epoch and
    continue from the backup (kinds with ``supports_resume``)."""
    selection: str = "validation"
    """How the number of boosting rounds is chosen (estimators): ``"validation"`` (early stopping on the validation
    part) or ``"rolling"`` (early stopping on rolling-origin folds inside the training part, then one fit on all of
    it: a calm validation part cannot stop it early)."""
    gap: int = 0
    """Rows left out between a rolling fold's training and validation rows (windows and targets overlap that far)."""
    precision: str = "float32"
    """Resolved training precision (:func:`~ml.training_pipeline.fitting.precision.resolve_precision`); kinds with
    ``supports_precision`` train a twin in it and keep the model float32."""
    fused_recurrence: bool = True
    """Train the model's LSTMs in TensorFlow's fused CPU kernel where it was measured faster at ``batch_size``
    (:mod:`ml.training_pipeline.layers.fused_lstm`: a twin, as for precision); ``False``: Keras' own loop."""


class ModelKind:
    """Base adapter. Subclasses implement every method; ``supports_gradients`` gates the harness's
    gradient, optimizer-step and ``get_config`` checks."""

    name: str = ""
    supports_gradients: bool = False
    supports_curriculum: bool = False
    """Whether :meth:`fit` can run curriculum phases (one optimizer carried across row subsets)."""
    supports_resume: bool = False
    """Whether :meth:`fit` honours ``FitSettings.resume`` (a backup of the training state after every epoch)."""
    supports_distribution: bool = False
    """Whether models of this kind train under a ``tf.distribute`` strategy (``TrainingConfig.distribute``)."""
    supports_precision: bool = False
    """Whether :meth:`fit` can compute in ``FitSettings.precision`` other than float32 (``TrainingConfig.precision``)."""
    window_value_bytes: float = 0.0
    """Bytes a fit holds per value of its training and validation windows, on top of the rows they view (0: the
    windows are cut per batch and never held; see :mod:`ml.training_pipeline.common.memory`)."""
    model_file: str = ""

    def uncertainty_method(self, model: Any) -> str | None:
        """``"sampling"``, ``"quantiles"`` or ``None``: what ``predict_with_uncertainty`` can do with this model."""
        return None

    def owns(self, model: Any) -> bool:
        raise NotImplementedError

    def seed(self, seed: int) -> None:
        """Seeds what this kind's training draws from, before a model is built (the same config and seed give the
        same model). The base seeds NumPy only; a kind whose framework has its own generators seeds them too."""
        np.random.seed(seed)

    def supports_task(self, task: Task) -> bool:
        """Whether models of this kind can learn the task."""
        return True

    def build(self, spec: ModelSpec, declared: tuple[TensorSpec, ...], task: Task, params: dict[str, Any],
              offset: LinearOffset | None = None) -> Any:
        """The model for ``declared`` inputs; with ``offset``, the last declared input feeds the fixed baseline the
        model adds to its output."""
        raise NotImplementedError

    supports_ensemble: bool = False
    """Whether :meth:`combine` can merge models trained with different seeds into one (``TrainingConfig.ensemble``)."""

    def combine(self, members: Sequence[Any]) -> Any:
        """One model whose prediction is the mean of the members' (same inputs, same task), saved and exported as
        one model."""
        raise ValueError(f"Models of the {self.name!r} kind cannot be combined into a seed ensemble. "
                         "Accepted: ensemble=1")

    supports_offset: bool = False
    """Whether :meth:`build` takes a :class:`LinearOffset` (a baseline-residual target)."""

    def declared_inputs(self, model: Any) -> tuple[TensorSpec, ...]:
        raise NotImplementedError

    def callbacks(self, spec: ModelSpec, patience: int, monitor: str, checkpoint_path: str | None) -> list:
        raise NotImplementedError

    def epoch_callback(self, on_epoch_end) -> Any:
        """A callback for :attr:`FitSettings.callbacks` that calls ``on_epoch_end(epoch, logs)`` after every epoch,
        or ``None`` for kinds that do not train in epochs (their history is reported when :meth:`fit` returns)."""
        return None

    def budget(self, model: Any, settings: FitSettings) -> str:
        """How long :meth:`fit` may run, in words for the log (``"up to 80 epochs"``)."""
        return f"up to {settings.epochs} epochs"

    def fit(self, model: Any, train: FitData, validation: FitData, settings: FitSettings) -> dict[str, list[float]]:
        """Fits in place and returns the per-epoch (or per-round) history."""
        raise NotImplementedError

    def predict(self, model: Any, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The prediction output, 2-D: regression values, P(positive) for binary, class probabilities."""
        raise NotImplementedError

    def save(self, model: Any, folder: Path) -> str:
        """Writes the native model file into ``folder``; returns its file name."""
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        raise NotImplementedError

    def write_onnx(self, model: Any, path: Path, sample: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    def reference_outputs(self, model: Any, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output by its ONNX name, as the framework computes it (for the parity check)."""
        raise NotImplementedError

    def onnx_feed(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named inputs as the kind's ONNX graph takes them."""
        return dict(inputs)

    def prediction_from_onnx(self, outputs: Mapping[str, np.ndarray], task: Mapping[str, Any]) -> np.ndarray:
        """The same 2-D prediction as :meth:`predict`, from ONNX Runtime's named outputs."""
        raise NotImplementedError

    def size(self, model: Any) -> int:
        """Parameters (or trees) for reports."""
        raise NotImplementedError
