"""What every problem provides to the pipeline, and the problem registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ml.training_pipeline.common.arguments import unknown_name_error
from ml.training_pipeline.common.plots import plot_history
from ml.training_pipeline.common.sample_weights import check_weights  # noqa: F401  (re-exported: problems.check_weights)
from ml.training_pipeline.models.kinds.base import FitData, LinearOffset
from ml.training_pipeline.models.registry import TensorSpec
from ml.training_pipeline.models.tasks import Task


@dataclass(frozen=True)
class ProblemData:
    """A problem's data, ready for any model kind.

    Attributes:
        train, validation, test: named inputs, fit-space targets and optional weights per split.
        inputs: the data's inputs (name, per-sample shape, dtype); the model must declare the same.
        schema: what a stored model needs to rebuild its inputs (written as ``feature_schema.json``).
        data: where the data came from (source, rows, range...), for metadata and the CLI.
        row_counts: rows (or windows) per split and bookkeeping.
        splits: the range each split covers (times or row numbers).
        notes: lines a user should read (gaps, resampling, dropped rows).
        context: problem-private values its evaluation needs (e.g. closes of each window).
    """

    train: FitData
    validation: FitData
    test: FitData
    inputs: tuple[TensorSpec, ...]
    schema: dict[str, Any]
    data: dict[str, Any]
    row_counts: dict[str, int]
    splits: dict[str, list[str]]
    notes: tuple[str, ...] = ()
    context: Any = None
    parity_rows: int = field(default=256)
    optional: tuple[str, ...] = ()
    """Inputs offered for the models that read them (e.g. calendar ``known``); dropped for the others."""
    offset: LinearOffset | None = None
    """A linear baseline the models learn the correction to (a baseline-residual target); its input is offered
    with the others and read by the model's offset, whatever the family."""
    model_params: dict[str, Any] = field(default_factory=dict)
    """Hyperparameters the data dictates (e.g. a vocabulary size), given to the models that take them; the
    config's own ``model_kwargs`` win."""

    def with_inputs(self, names: Sequence[str]) -> ProblemData:
        """The same data restricted to the named inputs (in that order), in the splits, ``inputs`` and the schema."""
        keep = lambda split: dataclasses.replace(split, inputs={n: split.inputs[n] for n in names})  # noqa: E731
        specs = {s.name: s for s in self.inputs}
        schema = dict(self.schema)
        if "inputs" in schema:
            schema["inputs"] = [s for s in schema["inputs"] if s["name"] in names]
        return dataclasses.replace(self, train=keep(self.train), validation=keep(self.validation), test=keep(self.test),
                                   inputs=tuple(specs[n] for n in names), schema=schema,
                                   optional=tuple(n for n in self.optional if n in names))

    def parity_sample(self) -> dict[str, np.ndarray]:
        """Real test inputs for the ONNX parity check."""
        return {name: array[: self.parity_rows] for name, array in self.test.inputs.items()}


class Problem:
    """One prediction problem: its data, target, task, baselines, metrics, summary and plots.

    Subclasses set :attr:`name` (the store key, e.g. ``"return"``) and implement the methods.
    """

    name: ClassVar[str] = ""
    type_name: ClassVar[str] = ""
    """Key in :data:`PROBLEM_TYPES`, recorded in metadata so a stored version finds its problem again."""

    @property
    def store_key(self) -> str:
        """The folder under the model name in the store."""
        return self.name

    @property
    def task(self) -> Task:
        raise NotImplementedError

    @property
    def feedback_delay(self) -> int:
        """Rows until a row's target is known (an adaptive interval learns from outcomes this late)."""
        return 1

    def describe(self) -> dict[str, Any]:
        """JSON-friendly identity of the problem, stored in metadata."""
        return {"type": self.type_name, "name": self.store_key, **self.task.describe()}

    def prepare(self, config) -> ProblemData:
        raise NotImplementedError

    def to_prediction(self, outputs: np.ndarray, data: ProblemData) -> np.ndarray:
        """Model outputs (2-D, fit space) -> predictions in target units."""
        raise NotImplementedError

    def fit_monitor(self, data: ProblemData) -> tuple[str, list]:
        """What early stopping and the learning-rate schedule watch, and the callbacks that log it.

        Default: the validation loss, logged by Keras itself.
        """
        return "val_loss", []

    def fit_decision(self, validation_predictions: np.ndarray, data: ProblemData) -> ProblemData:
        """Decisions fitted on the validation predictions after training (e.g. a classification threshold),
        recorded in the schema so a stored model applies them; default: none."""
        return data

    def evaluate(self, predictions: np.ndarray, data: ProblemData) -> dict[str, Any]:
        """Test metrics of the model next to the problem's naive baselines on the same rows."""
        raise NotImplementedError

    def summary(self, report: dict[str, Any]) -> dict[str, float]:
        """The few numbers ``atb models list`` shows, each next to its baseline."""
        raise NotImplementedError

    @classmethod
    def summary_line(cls, summary: dict[str, float]) -> str:
        raise NotImplementedError

    @classmethod
    def predict_file(cls, stored, data_path: str | Path | None, **options: Any) -> dict[str, Any]:
        """``atb predict``: a stored version's prediction from a data file (``options``: uncertainty, n_samples,
        interval); problems without a file format of their own take named arrays instead."""
        raise ValueError(f"Version {stored.version!r} is a {cls.type_name!r} model with no data-file format: "
                         "use StoredModel.predict with its named inputs")

    @classmethod
    def follow_file(cls, stored, data_path: str | Path, emit, **options: Any) -> dict[str, Any]:
        """``atb predict --follow``: a stored version scoring a growing file as it grows (``emit`` is called with each
        flagged result; ``options``: until_idle, poll_s, from_start); returns a summary when it stops."""
        raise ValueError(f"--follow scores a growing log file with an anomaly model. Received: version "
                         f"{stored.version!r}, a {cls.type_name!r} model")

    @classmethod
    def evaluate_file(cls, stored, data_path: str | Path | None) -> dict[str, Any]:
        """``atb evaluate``: a stored version's metrics next to its baselines on a data file."""
        raise ValueError(f"Version {stored.version!r} is a {cls.type_name!r} model with no data-file format: "
                         "use StoredModel.predict with its named inputs and score the outputs")

    @classmethod
    def example(cls) -> tuple[Problem, dict[str, Any]]:
        """A tiny instance on bundled real data, and the ``TrainingConfig`` arguments that prepare it: the case
        the shared harness (:func:`ml.testing.run_problem_test`) runs for every registered problem type."""
        raise NotImplementedError(f"{cls.__name__} has no example(); every registered problem needs one")

    @classmethod
    def from_schema(cls, schema: dict[str, Any]) -> Problem:
        """The problem again from a stored version's ``feature_schema.json`` (what serving a file needs).

        Raises:
            NotImplementedError: problems served by named arrays only (nothing to rebuild).
        """
        raise NotImplementedError(f"{cls.__name__} is served by named arrays; it is not rebuilt from a schema")

    def plot(self, predictions: np.ndarray, data: ProblemData, history: dict, folder: Path, title: str) -> None:
        plot_history(history, folder / "training_history.png", title)


PROBLEM_TYPES: dict[str, type[Problem]] = {}
"""type name -> problem class (filled by the problem modules)."""

CONFIG_PROBLEMS: dict[str, type[Problem]] = {}
"""Problems a ``TrainingConfig`` can name by ``target`` (the OHLCV ones); others are passed as objects."""


def register_problem(cls: type[Problem], *, from_config: bool = False) -> type[Problem]:
    PROBLEM_TYPES[cls.type_name] = cls
    if from_config:
        CONFIG_PROBLEMS[cls.name] = cls
    return cls


def problem_type(type_name: str) -> type[Problem]:
    """The problem class recorded in a stored version's metadata."""
    if type_name not in PROBLEM_TYPES:
        raise unknown_name_error("problem type", type_name, PROBLEM_TYPES)
    return PROBLEM_TYPES[type_name]
