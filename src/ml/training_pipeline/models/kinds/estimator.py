"""Adapter for tree estimators (LightGBM's scikit-learn API); one flat float input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml.training_pipeline.fitting.boosting import train_lightgbm_with_early_stopping
from ml.training_pipeline.models.kinds.base import FitData, FitSettings, ModelKind
from ml.training_pipeline.models.registry import DEFAULT_INPUT_NAME, ESTIMATOR, ModelSpec, TensorSpec
from ml.training_pipeline.models.tasks import Task

LIGHTGBM_OPSET = 15  # the installed onnxmltools converter refuses 17 for LightGBM
MIN_EARLY_STOPPING_ROUNDS = 20


def _matrix(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    if len(inputs) != 1:
        raise ValueError(f"Tree estimators take one input. Received inputs: {', '.join(inputs)}")
    (array,) = inputs.values()
    array = np.asarray(array, dtype=np.float32)
    return array.reshape(len(array), int(np.prod(array.shape[1:])))


class EstimatorKind(ModelKind):
    """LightGBM regressors and classifiers; windows are flattened to ``timesteps * features`` columns."""

    name = ESTIMATOR
    supports_gradients = False
    model_file = "model.txt"

    def owns(self, model: Any) -> bool:
        return type(model).__module__.startswith("lightgbm")

    def supports_task(self, task: Task) -> bool:
        # one tree ensemble per model: a single regression target, or classes
        return task.estimator_type == "classifier" or (task.estimator_type == "regressor" and task.units == 1)

    def build(self, spec: ModelSpec, declared: tuple[TensorSpec, ...], task: Task, params: dict[str, Any]):
        if not self.supports_task(task):
            raise ValueError(f"model_type={spec.name!r} cannot learn task={task.task!r} with {task.units} outputs. "
                             "Accepted: regression (one output), binary, multiclass")
        (primary,) = declared
        return spec.builder(task=task, n_features=math.prod(primary.shape), **params)

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
        train_lightgbm_with_early_stopping(
            model, _matrix(train.inputs), train.y, _matrix(validation.inputs), validation.y,
            early_stopping_rounds=max(settings.patience, MIN_EARLY_STOPPING_ROUNDS),
            sample_weight=train.weight, eval_sample_weight=validation.weight,
            log_every=max(1, model.get_params()["n_estimators"] // 10) if settings.verbose else 0)
        return {f"val_{name}": [float(v) for v in values] for name, values in model.evals_result_["valid_0"].items()}

    def budget(self, model, settings: FitSettings) -> str:
        rounds = settings.epochs or model.get_params()["n_estimators"]
        source = "--epochs / epochs" if settings.epochs else "the preset's n_estimators; --epochs sets it"
        return (f"up to {rounds} boosting rounds ({source}; early stopping after "
                f"{max(settings.patience, MIN_EARLY_STOPPING_ROUNDS)} rounds without improvement)")

    def predict(self, model, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        x = _matrix(inputs)
        if hasattr(model, "booster_") or not hasattr(model, "num_trees"):
            if hasattr(model, "predict_proba"):
                proba = model.predict_proba(x)
                return proba[:, 1:2] if proba.shape[1] == 2 else proba
            return np.asarray(model.predict(x), dtype=np.float64).reshape(len(x), -1)
        # a Booster loaded from model.txt: binary gives P(1) directly, multiclass the probabilities
        return np.asarray(model.predict(x), dtype=np.float64).reshape(len(x), -1)

    def save(self, model, folder: Path) -> str:
        model.booster_.save_model(str(Path(folder) / self.model_file))
        return self.model_file

    def load(self, path: Path):
        import lightgbm

        return lightgbm.Booster(model_file=str(path))

    def write_onnx(self, model, path: Path, sample: Mapping[str, np.ndarray]) -> None:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        onnx_model = onnxmltools.convert_lightgbm(
            model, initial_types=[(DEFAULT_INPUT_NAME, FloatTensorType([None, int(model.n_features_in_)]))],
            target_opset=LIGHTGBM_OPSET, zipmap=False)
        Path(path).write_bytes(onnx_model.SerializeToString())

    def reference_outputs(self, model, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = _matrix(sample)
        if hasattr(model, "classes_"):
            return {"label": model.predict(x), "probabilities": model.predict_proba(x)}
        return {"outputs": np.asarray(model.predict(x)).reshape(len(x), -1)}

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
