"""Adapter for tree estimators (LightGBM's scikit-learn API); one flat float input."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.training_pipeline.fitting.boosting import train_lightgbm_with_early_stopping
from ml.training_pipeline.models.kinds.base import FitData, FitSettings, LinearOffset, ModelKind
from ml.training_pipeline.models.registry import DEFAULT_INPUT_NAME, ESTIMATOR, ModelSpec, TensorSpec
from ml.training_pipeline.models.tasks import Task

if TYPE_CHECKING:
    import pyarrow

LIGHTGBM_OPSET = 15  # the installed onnxmltools converter refuses 17 for LightGBM
MIN_EARLY_STOPPING_ROUNDS = 20


OFFSET_FILE = "offset.json"
"""Next to ``model.txt``: the inputs' order and the :class:`LinearOffset` of a baseline-residual model."""


def _flat(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return array.reshape(len(array), int(np.prod(array.shape[1:])))


def _ordered(inputs: Mapping[str, np.ndarray]) -> list[str]:
    # the window first (a model with a baseline offset reads its window, then the baseline's columns: the offset
    # reads the last ones); stable: the others keep their order
    return sorted(inputs, key=lambda name: name != DEFAULT_INPUT_NAME)


def _matrix(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """One row of columns per sample: the inputs flattened and concatenated (ONNX Runtime's feed)."""
    return np.concatenate([_flat(inputs[name]) for name in _ordered(inputs)], axis=1)


def _table(inputs: Mapping[str, np.ndarray]) -> pyarrow.Table:
    """The columns of :func:`_matrix` as an Arrow table that LightGBM reads in place (its Arrow interface): a
    window view's columns are slices of its rows, and windows held as starts in their rows (several symbols pooled,
    windows with holes) are one chunk per run of consecutive windows
    (:func:`~ml.training_pipeline.common.windows.flat_column_chunks`), so 2.6M windows of 60 x 15 never become the
    9.4 GB matrix their flattening would be. The names are LightGBM's own defaults (``Column_<i>``), which the
    stored model keeps."""
    import pyarrow as pa

    from ml.training_pipeline.common.windows import flat_column_chunks  # pandas' module: imported when a model fits

    columns = [column for name in _ordered(inputs) for column in flat_column_chunks(inputs[name])]
    return pa.Table.from_arrays(
        [pa.chunked_array([pa.Array.from_buffers(pa.float32(), len(c), [None, pa.py_buffer(c)]) for c in chunks],
                          pa.float32()) for chunks in columns],
        names=[f"Column_{i}" for i in range(len(columns))])


def _offset_of(model: Any, x: pyarrow.Table) -> np.ndarray | float:
    """The model's baseline per row of its column table ``x`` (0 without an offset)."""
    offset: LinearOffset | None = getattr(model, "_atb_offset", None)
    if offset is None:
        return 0.0
    last = range(x.num_columns - len(offset.weights), x.num_columns)
    return offset.apply(np.column_stack([x.column(i).to_numpy() for i in last]))


ROLLING_FOLDS = 3
"""Rolling-origin folds inside the training part when ``selection="rolling"``."""


def _init_score(model: Any, x: pyarrow.Table) -> np.ndarray | None:
    """The baseline boosting starts from (``None`` without an offset)."""
    return None if getattr(model, "_atb_offset", None) is None else np.asarray(_offset_of(model, x))


def _rows(table: pyarrow.Table, rows: np.ndarray) -> pyarrow.Table:
    """The rows of a consecutive run (as TimeSeriesSplit gives), without a copy."""
    return table.slice(int(rows[0]), len(rows))


def _rolling_rounds(model: Any, x: pyarrow.Table, train: FitData, gap: int, stopping: int) -> int:
    """Boosting rounds chosen on rolling-origin folds of the training rows: fold ``k`` of :data:`ROLLING_FOLDS` fits
    on the rows before its block (less ``gap`` rows) and early-stops on the block; the mean best round is kept."""
    from sklearn.base import clone
    from sklearn.model_selection import TimeSeriesSplit

    best = []
    for fit_rows, stop_rows in TimeSeriesSplit(n_splits=ROLLING_FOLDS, gap=gap).split(np.empty(x.num_rows)):
        fold = clone(model)
        for name in ("_atb_offset", "_atb_expected_features"):
            if hasattr(model, name):
                setattr(fold, name, getattr(model, name))
        weight = None if train.weight is None else train.weight[fit_rows]
        train_lightgbm_with_early_stopping(
            fold, _rows(x, fit_rows), train.y[fit_rows], _rows(x, stop_rows), train.y[stop_rows],
            early_stopping_rounds=stopping, sample_weight=weight, init_score=_init_score(model, _rows(x, fit_rows)),
            eval_init_score=_init_score(model, _rows(x, stop_rows)))
        best.append(max(1, int(fold.best_iteration_ or fold.n_estimators)))
    return max(1, round(float(np.mean(best))))


class EstimatorKind(ModelKind):
    """LightGBM regressors and classifiers; windows are flattened to ``timesteps * features`` columns."""

    name = ESTIMATOR
    supports_gradients = False
    supports_offset = True  # boosting starts from the baseline (init_score); predictions add it back
    # LightGBM bins every column of the training and validation windows (read in place from the rows, see _table):
    # measured 918 bytes per data row of 60 x 15 windows against a Keras model's 322 (benchmarks/scale.py, 50k to
    # 2.6M one-minute rows): 596 more per row, 0.66 per window value, rounded up
    window_value_bytes = 0.7
    model_file = "model.txt"

    def owns(self, model: Any) -> bool:
        return type(model).__module__.startswith("lightgbm")

    def supports_task(self, task: Task) -> bool:
        # one tree ensemble per model: a single regression target, or classes
        return task.estimator_type == "classifier" or (task.estimator_type == "regressor" and task.units == 1)

    def build(self, spec: ModelSpec, declared: tuple[TensorSpec, ...], task: Task, params: dict[str, Any],
              offset: LinearOffset | None = None):
        if not self.supports_task(task):
            raise ValueError(f"model_type={spec.name!r} cannot learn task={task.task!r} with {task.units} outputs. "
                             "Accepted: regression (one output), binary, multiclass")
        if offset is not None and task.estimator_type != "regressor":
            raise ValueError(f"A baseline offset needs a regression target. Received: task={task.task!r}")
        model = spec.builder(task=task, n_features=sum(math.prod(s.shape) for s in declared), **params)
        if offset is not None:  # the baseline's columns come last, after the window (see _ordered)
            model._atb_offset = offset
        return model

    def declared_inputs(self, model) -> tuple[TensorSpec, ...]:
        fitted = hasattr(model, "num_feature") or bool(getattr(model, "fitted_", False))
        if not fitted:
            raise ValueError("export_onnx needs a fitted LightGBM model. Received an unfitted estimator")
        n_features = model.num_feature() if hasattr(model, "num_feature") else model.n_features_in_
        return (TensorSpec(DEFAULT_INPUT_NAME, (int(n_features),), "float32"),)

    def callbacks(self, spec: ModelSpec, patience: int, monitor: str, checkpoint_path: str | None) -> list:
        import lightgbm

        if checkpoint_path is not None:
            raise ValueError(f"checkpoint_path applies to Keras models only. Received: model_type={spec.name!r}, "
                             f"checkpoint_path={checkpoint_path!r}")
        return [lightgbm.early_stopping(patience, verbose=False), lightgbm.log_evaluation(period=0)]

    def fit(self, model, train: FitData, validation: FitData, settings: FitSettings) -> dict[str, list[float]]:
        if settings.epochs:  # --epochs is the most boosting rounds
            model.set_params(n_estimators=settings.epochs)
        x_train, x_val = _table(train.inputs), _table(validation.inputs)
        stopping = max(settings.patience, MIN_EARLY_STOPPING_ROUNDS)
        if settings.selection == "rolling":
            rounds = _rolling_rounds(model, x_train, train, settings.gap, stopping)
            model.set_params(n_estimators=rounds)
            stopping = rounds + 1  # the rounds are chosen: the validation part is scored, never stops the fit
        train_lightgbm_with_early_stopping(
            model, x_train, train.y, x_val, validation.y, early_stopping_rounds=stopping,
            sample_weight=train.weight, eval_sample_weight=validation.weight,
            # boosting starts from the baseline: the trees learn its correction
            init_score=_init_score(model, x_train), eval_init_score=_init_score(model, x_val),
            log_every=max(1, model.get_params()["n_estimators"] // 10) if settings.verbose else 0)
        return {f"val_{name}": [float(v) for v in values] for name, values in model.evals_result_["valid_0"].items()}

    def budget(self, model, settings: FitSettings) -> str:
        rounds = settings.epochs or model.get_params()["n_estimators"]
        source = "--epochs / epochs" if settings.epochs else "the preset's n_estimators; --epochs sets it"
        where = (f"on {ROLLING_FOLDS} rolling-origin folds inside the training part, then one fit on all of it"
                 if settings.selection == "rolling" else "on the validation part")
        return (f"up to {rounds} boosting rounds ({source}; early stopping after "
                f"{max(settings.patience, MIN_EARLY_STOPPING_ROUNDS)} rounds without improvement {where})")

    def predict(self, model, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        x = _table(inputs)
        if hasattr(model, "booster_") or not hasattr(model, "num_trees"):
            if hasattr(model, "predict_proba"):
                proba = model.predict_proba(x)
                return proba[:, 1:2] if proba.shape[1] == 2 else proba
            return (np.asarray(model.predict(x), dtype=np.float64) + _offset_of(model, x)).reshape(len(x), -1)
        # a Booster loaded from model.txt: binary gives P(1) directly, multiclass the probabilities
        return (np.asarray(model.predict(x), dtype=np.float64) + _offset_of(model, x)).reshape(len(x), -1)

    def save(self, model, folder: Path) -> str:
        model.booster_.save_model(str(Path(folder) / self.model_file))
        if getattr(model, "_atb_offset", None) is not None:
            (Path(folder) / OFFSET_FILE).write_text(json.dumps({"offset": model._atb_offset.to_dict()}, indent=2))
        return self.model_file

    def load(self, path: Path):
        import lightgbm

        booster = lightgbm.Booster(model_file=str(path))
        offset_file = Path(path).parent / OFFSET_FILE
        if offset_file.is_file():
            saved = json.loads(offset_file.read_text())
            booster._atb_offset = LinearOffset.from_dict(saved["offset"])
        return booster

    def write_onnx(self, model, path: Path, sample: Mapping[str, np.ndarray]) -> None:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        onnx_model = onnxmltools.convert_lightgbm(
            model, initial_types=[(DEFAULT_INPUT_NAME, FloatTensorType([None, int(model.n_features_in_)]))],
            target_opset=LIGHTGBM_OPSET, zipmap=False)
        if getattr(model, "_atb_offset", None) is not None:
            _add_offset_to_graph(onnx_model, model._atb_offset, int(model.n_features_in_))
        Path(path).write_bytes(onnx_model.SerializeToString())

    def reference_outputs(self, model, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = _table(sample)
        if hasattr(model, "classes_"):
            return {"label": model.predict(x), "probabilities": model.predict_proba(x)}
        return {"outputs": (np.asarray(model.predict(x), np.float64) + _offset_of(model, x)).reshape(len(x), -1)}

    def onnx_feed(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {DEFAULT_INPUT_NAME: _matrix(inputs)}

    def prediction_from_onnx(self, outputs: Mapping[str, np.ndarray], task: Mapping[str, Any]) -> np.ndarray:
        if "probabilities" in outputs:
            proba = np.asarray(outputs["probabilities"])
            return proba[:, 1:2] if proba.shape[1] == 2 else proba
        out = np.asarray(outputs["outputs"])
        return out.reshape(len(out), -1)

    def size(self, model) -> int:
        booster = getattr(model, "booster_", model)
        return int(booster.num_trees())


def _add_offset_to_graph(onnx_model, offset: LinearOffset, n_columns: int) -> None:
    """Appends ``outputs += columns[-k:] @ weights + bias`` to a converted LightGBM regressor's graph, so the ONNX
    file returns the full forecast as the native model's :meth:`EstimatorKind.predict` does."""
    from onnx import TensorProto, helper, numpy_helper

    graph = onnx_model.graph
    trees = graph.output[0].name
    k = len(offset.weights)
    graph.initializer.extend([
        numpy_helper.from_array(np.arange(n_columns - k, n_columns, dtype=np.int64), "offset_column_indices"),
        numpy_helper.from_array(np.asarray(offset.weights, np.float32).reshape(k, 1), "offset_weights"),
        numpy_helper.from_array(np.array([offset.bias], np.float32), "offset_bias"),
    ])
    graph.node.extend([
        # Gather, not Slice: the converter's graph may declare an opset older than Slice's tensor inputs
        helper.make_node("Gather", [graph.input[0].name, "offset_column_indices"], ["offset_columns"], axis=1),
        helper.make_node("MatMul", ["offset_columns", "offset_weights"], ["offset_linear"]),
        helper.make_node("Add", ["offset_linear", "offset_bias"], ["offset_value"]),
        helper.make_node("Add", [trees + "_trees", "offset_value"], [trees]),
    ])
    # the trees' own output feeds the sum under a new name; the graph's output keeps its name
    for node in graph.node[:-4]:
        node.output[:] = [trees + "_trees" if name == trees else name for name in node.output]
    graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
