"""Using stored models: next-bar prediction and evaluation on any OHLCV data, via ONNX Runtime.

Both rebuild the features exactly as at training time, check them against the stored
feature schema, apply the stored scaler and run the stored ONNX graph; no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.training_pipeline.datasets import MOVING_AVERAGE_WINDOW, StandardScaler, sliding_windows
from ml.training_pipeline.evaluation import evaluate_direction, evaluate_returns
from ml.training_pipeline.features import build_features, build_target
from ml.training_pipeline.ingestion import LoadedData, load_ohlcv
from ml.training_pipeline.store import ModelStore


class SchemaMismatchError(ValueError):
    """The data or library produce features other than the ones the model was trained on."""


@dataclass(frozen=True)
class StoredModel:
    """A stored version, ready to serve."""

    path: Path
    metadata: dict
    schema: dict

    @property
    def version(self) -> str:
        return self.path.name

    @classmethod
    def load(cls, symbol: str, version: str | None = None, models_dir: str | None = None,
             target: str | None = None) -> StoredModel:
        path = ModelStore(models_dir).find(symbol, version, target)
        return cls(path, json.loads((path / "metadata.json").read_text()),
                   json.loads((path / "feature_schema.json").read_text()))

    def predictor(self):
        from ml.training_pipeline.export import OnnxPredictor

        predictor = OnnxPredictor(self.path / "model.onnx")
        if list(predictor.input_shape[1:]) != list(self.schema["input_shape"]):
            raise SchemaMismatchError(
                f"Version {self.version!r}: model.onnx expects input {list(predictor.input_shape[1:])} but "
                f"feature_schema.json says {self.schema['input_shape']}"
            )
        return predictor

    def load_data(self, data_path: str | None) -> LoadedData:
        symbol = self.metadata["config"]["symbol"]
        return load_ohlcv(symbol, data_path, timeframe=self.schema["timeframe"])

    def scaled_features(self, data: LoadedData):
        """Features in schema order, scaled with the stored scaler; checks names and sizes."""
        features = build_features(data.frame)
        expected = list(self.schema["feature_names"])
        if list(features.columns) != expected:
            raise SchemaMismatchError(
                f"Feature schema mismatch for version {self.version!r}: the model expects {expected}, "
                f"the data gives {list(features.columns)}"
            )
        scaler = StandardScaler.from_dict(self.schema["scaler"])
        if len(scaler.mean) != len(expected):
            raise SchemaMismatchError(
                f"Feature schema of version {self.version!r} is inconsistent: {len(expected)} features, "
                f"{len(scaler.mean)} scaler entries"
            )
        length = self.schema["sequence_length"]
        if len(features) < length:
            raise ValueError(f"Need at least {length + self.schema['warmup_bars']} bars to build one window. "
                             f"Received: {len(data.frame)} bars")
        return features, scaler.transform(features.to_numpy(np.float64))

    def model_inputs(self, windows: np.ndarray) -> np.ndarray:
        return windows.reshape(len(windows), -1) if self.schema["input_layout"] == "flat" else windows

    def to_target(self, outputs: np.ndarray) -> np.ndarray:
        outputs = np.asarray(outputs, dtype=np.float64)
        if outputs.ndim == 2 and outputs.shape[1] == 2:  # LightGBM classifier: P(down), P(up)
            outputs = outputs[:, 1]
        outputs = outputs.reshape(-1)
        if self.schema.get("target_scaler"):
            outputs = StandardScaler.from_dict(self.schema["target_scaler"]).inverse_transform(outputs[:, None]).reshape(-1)
        return outputs


def predict_next(symbol: str, version: str | None = None, data_path: str | None = None,
                 models_dir: str | None = None, target: str | None = None) -> dict:
    """Predicts the bar ``horizon`` steps after the last bar of the data.

    ``target`` picks ``return`` or ``direction`` models; by default the newest of either.

    Example:
        >>> predict_next("BTCUSDT")["predicted_close"]  # doctest: +SKIP
    """
    stored = StoredModel.load(symbol, version, models_dir, target)
    predictor = stored.predictor()
    data = stored.load_data(data_path)
    features, scaled = stored.scaled_features(data)
    window = scaled[-stored.schema["sequence_length"]:][None]
    value = float(stored.to_target(predictor.predict(stored.model_inputs(window)))[0])
    last_close = float(data.frame["close"].loc[features.index[-1]])
    result = {"symbol": stored.metadata["config"]["symbol"], "version": stored.version,
              "model_type": stored.metadata["config"]["model_type"], "target": stored.schema["target"],
              "as_of": features.index[-1].isoformat(), "horizon_bars": stored.schema["horizon"],
              "timeframe": stored.schema["timeframe"], "last_close": last_close, "data": data.describe()}
    if stored.schema["target"] == "return":
        result.update(predicted_log_return=value, predicted_close=last_close * float(np.exp(value)),
                      direction="up" if value > 0 else "down")
    else:
        result.update(probability_up=value, direction="up" if value >= 0.5 else "down")
    return result


def evaluate_stored(symbol: str, data_path: str | None, version: str | None = None,
                    models_dir: str | None = None, target: str | None = None) -> dict:
    """Metrics and naive baselines of a stored model on every window of the given data.

    Example:
        >>> evaluate_stored("BTCUSDT", "later_period.csv")["report"]["skill"]  # doctest: +SKIP
    """
    stored = StoredModel.load(symbol, version, models_dir, target)
    predictor = stored.predictor()
    data = stored.load_data(data_path)
    features, scaled = stored.scaled_features(data)
    length, horizon = stored.schema["sequence_length"], stored.schema["horizon"]
    close = data.frame["close"]
    target = build_target(close, stored.schema["target"], horizon).reindex(features.index).to_numpy()
    ends = np.arange(length - 1, len(features))
    known = ~np.isnan(target[ends])
    if not known.any():
        raise ValueError(f"No window with a known outcome: need more than {length + horizon} bars after warm-up")
    windows = sliding_windows(scaled, length)[known]
    ends = ends[known]
    outputs = np.concatenate([predictor.predict(stored.model_inputs(windows[i:i + 2048]))
                              for i in range(0, len(windows), 2048)])
    predictions = stored.to_target(outputs)
    closes = close.reindex(features.index).to_numpy()
    future = close.shift(-horizon).reindex(features.index).to_numpy()
    # the same baseline as at training time: averaged over the feature rows
    moving_average = close.reindex(features.index).rolling(MOVING_AVERAGE_WINDOW, min_periods=1).mean().to_numpy()
    if stored.schema["target"] == "return":
        report = evaluate_returns(predictions, closes[ends], future[ends], moving_average[ends])
    else:
        majority = int(stored.metadata["metrics"].get("majority_class", 1))
        report = evaluate_direction(predictions, target[ends], majority)
    # Bars from the start of the training part to the end of the validation part were used
    # for fitting or early stopping: figures on them are in-sample.
    splits = stored.metadata.get("splits")
    seen = [pd.Timestamp(t) for t in ((splits["train"][0], splits["validation"][1]) if splits
                                      else (stored.metadata["data"]["start"], stored.metadata["data"]["end"]))]
    times = features.index[ends]
    in_sample = int(np.sum((times >= seen[0]) & (times <= seen[1])))
    return {"symbol": stored.metadata["config"]["symbol"], "version": stored.version,
            "model_type": stored.metadata["config"]["model_type"], "data": data.describe(), "report": report,
            "in_sample_bars": in_sample, "model_fitted_on": [t.isoformat() for t in seen]}
