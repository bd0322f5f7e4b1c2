"""Using stored models: predictions from named inputs, next-bar prediction and evaluation on
OHLCV data, through ONNX Runtime (no TensorFlow) when the version has an ONNX file.

OHLCV problems rebuild the features exactly as at training time, check them against the
stored feature schema and apply the stored scaler; what a prediction means and how it is
scored is the problem object's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.training_pipeline.common.conformal import serving_half_width
from ml.training_pipeline.common.markets import check_symbol
from ml.training_pipeline.common.tensors import check_named_inputs
from ml.training_pipeline.common.windows import StandardScaler
from ml.training_pipeline.export import OnnxPredictor
from ml.training_pipeline.models.kinds import get_kind
from ml.training_pipeline.models.registry import STATIC_INPUT, TensorSpec
from ml.training_pipeline.problems import PriceProblem, problem_type
from ml.training_pipeline.problems.price.features import BAR_CALENDAR_NAMES, build_features
from ml.training_pipeline.problems.price.ohlcv import LoadedData, load_ohlcv
from ml.training_pipeline.store.versions import ModelStore, read_metadata
from ml.training_pipeline.uncertainty import (
    DEFAULT_INTERVAL,
    check_interval,
    check_n_samples,
    predict_with_uncertainty,
    require_uncertainty,
    widened,
)

_BATCH = 2048
KNOWN_BASES = ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "DOT", "LTC", "AVAX", "LINK", "MATIC", "TRX")
"""Base assets a file name is checked against for the 'looks like another market' note."""


class SchemaMismatchError(ValueError):
    """The data or library produce features other than the ones the model was trained on."""


@dataclass(frozen=True)
class StoredModel:
    """A stored version, ready to serve.

    Example:
        >>> stored = StoredModel.load("SHOPS", target="sales")  # doctest: +SKIP
        >>> stored.predict({"window": w, "ids": ids})  # doctest: +SKIP
    """

    path: Path
    metadata: dict
    schema: dict
    # the loaded ONNX session or native model, once: a live follower predicts every second, and a session took
    # ~20 ms to build each time (benchmarks/log_anomaly.py's live-detection rows)
    loaded: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def problem_class(self):
        return problem_type(self.metadata.get("problem", {}).get("type", self.schema.get("target", "return")))

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        if "inputs" in self.schema:
            return tuple(TensorSpec.from_dict(d) for d in self.schema["inputs"])
        return (TensorSpec("inputs", tuple(self.schema["input_shape"])),)  # versions stored before named inputs

    @classmethod
    def load(cls, symbol: str, version: str | None = None, models_dir: str | None = None,
             target: str | None = None, timeframe: str | None = None, model_type: str | None = None) -> StoredModel:
        """The stored version for ``symbol``: its own, or else the newest several-symbol model trained on it.

        A several-symbol version comes back as the view of ``symbol``: its scaler, baselines and splits.
        """
        store = ModelStore(models_dir)
        name = check_symbol(symbol)
        if not store.problems(name):
            name = next(iter(store.names_trained_on(name, target)), name)  # none: find() says nothing is stored
        path = store.find(name, version, target, timeframe=timeframe, model_type=model_type)
        stored = cls(path, read_metadata(path), json.loads((path / "feature_schema.json").read_text()))
        return stored.for_symbol(check_symbol(symbol)) if "symbols" in stored.schema else stored

    def for_symbol(self, symbol: str) -> StoredModel:
        """The view of one symbol of a several-symbol version (its scaler, baselines and splits).

        Raises:
            ValueError: the version was not trained on ``symbol``.
        """
        trained = self.schema["symbols"]
        if symbol not in trained:
            raise ValueError(f"Version {self.version!r} was trained on {', '.join(trained)}, not {symbol}. "
                             f"Accepted: {', '.join(trained)}")
        problem = self.metadata["problem"]
        splits = self.metadata.get("splits", {}).get("by_symbol", {}).get(symbol)
        metadata = {**self.metadata, "problem": problem.get("base", problem),
                    "config": {**self.metadata["config"], "symbol": symbol,
                               "store_name": self.path.parent.parent.name},
                    "metrics": self.metadata["metrics"].get("by_group", {}).get(symbol, self.metadata["metrics"]),
                    **({"splits": splits} if splits else {})}
        # the model's inputs are the version's (the per-symbol schemas list all the inputs a problem offered)
        return StoredModel(self.path, metadata, {**self.schema, **trained[symbol], "inputs": self.schema["inputs"],
                                                 "static_id": list(trained).index(symbol)})

    def uncertain_model(self):
        """The native model, when it can give uncertainty.

        Raises:
            ValueError: the stored model is deterministic with point outputs.
        """
        model = self._kind().load(self.path / self.metadata["model"]["file"])
        require_uncertainty(model, f"Version {self.version!r} ({self.metadata['config']['model_type']})")
        return model

    def uncertainty(self, model, inputs: dict[str, np.ndarray], problem: PriceProblem, last_close: float,
                    n_samples: int, interval: float) -> dict[str, Any]:
        """Mean, std and interval of one prediction in the target's units, and what each bound means."""
        found = predict_with_uncertainty(model, inputs, n_samples=n_samples, interval=interval)
        stored = self.metadata.get("metrics", {}).get("uncertainty", {})
        # the split-conformal scale fitted on the validation part holds for the nominal level it was fitted at
        scale = stored.get("calibration_scale") if stored.get("nominal") == interval else None
        if scale is not None:
            found = widened(found, scale)
        mean, lower, upper = (float(self.to_target(a)[0]) for a in (found.mean, found.lower, found.upper))
        std = abs(float(self.to_target(found.mean + found.std)[0]) - mean)
        low, high = problem.next_prediction(lower, last_close), problem.next_prediction(upper, last_close)
        how = f"{found.method}{f', {found.n_samples} samples' if found.n_samples else ''}"
        how += f"; calibrated on validation, x{1 + scale:.3g} half-width" if scale is not None else "; not calibrated"
        return {"method": found.method, "n_samples": found.n_samples, "interval": interval, "mean": mean, "std": std,
                "calibration_scale": scale,
                "lower": lower, "upper": upper, "lower_prediction": low, "upper_prediction": high,
                **({"entropy": float(found.entropy[0])} if found.entropy is not None else {}),
                "text": f"{interval:.0%} interval: {problem.interval_line(low, high)}; std {std:.3g} ({how})"}

    def conformal(self, value: float, problem: PriceProblem, last_close: float, level: float | None) -> dict | None:
        """The stored conformal interval around one prediction at ``level`` (default: the stored nominal level), in
        the target's units and in the problem's words; ``None`` when the version stored none."""
        stored = self.metadata.get("metrics", {}).get("interval")
        if not stored or "serving" not in stored:
            return None
        level = stored["nominal"] if level is None else level
        half, how = serving_half_width(stored, level)
        low, high = problem.next_prediction(value - half, last_close), problem.next_prediction(value + half, last_close)
        return {"level": level, "half_width": half, "method": how, "lower_prediction": low, "upper_prediction": high,
                "text": f"{level:.0%} interval: {problem.interval_line(low, high)} ({how})"}

    def window_inputs(self, problem: PriceProblem, x: np.ndarray, end_times: pd.DatetimeIndex,
                      extras: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The model's named inputs for price windows ``x`` ending at ``end_times`` (calendar, symbol id as stored;
        ``extras``: the problem's baseline values at each window's last bar, for a baseline-residual model)."""
        offered = problem.window_inputs(x, end_times, self.schema["timeframe"], extras)
        if "static_id" in self.schema:
            offered[STATIC_INPUT] = np.full((len(x), 1), self.schema["static_id"], np.int32)
        return {spec.name: offered[spec.name] for spec in self.inputs}

    def _kind(self):
        return get_kind(self.metadata.get("model", {}).get("kind", "keras" if (self.path / "model.keras").is_file()
                                                             else "estimator"))

    def predictor(self):
        """The ONNX Runtime predictor, checked against the stored schema (built once per instance)."""
        if "onnx" not in self.loaded:
            self.loaded["onnx"] = self._checked_predictor()
        return self.loaded["onnx"]

    def _checked_predictor(self):
        predictor = OnnxPredictor(self.path / "model.onnx")
        zero_rows = {s.name: np.zeros((0, *(1 if d is None else d for d in s.shape)), s.dtype) for s in self.inputs}
        feed = self._kind().onnx_feed(zero_rows)
        expected = {name: tuple(a.shape[1:]) for name, a in feed.items()}
        graph = {s.name: tuple(s.shape) for s in predictor.inputs}
        fits = set(expected) == set(graph) and all(
            all(g is None or g == e for g, e in zip(graph[n], expected[n], strict=False)) and len(graph[n]) == len(expected[n])
            for n in graph)
        if not fits:
            raise SchemaMismatchError(f"Version {self.version!r}: model.onnx expects inputs {graph} but "
                                      f"feature_schema.json gives {expected}")
        return predictor

    def predict(self, inputs: Any) -> np.ndarray:
        """The model's 2-D prediction output for named inputs (ONNX Runtime; the native model when
        the version has no ONNX file).

        Raises:
            ValueError: unknown, missing or mis-typed inputs.
        """
        kind = self._kind()
        predictor = self.predictor() if (self.path / "model.onnx").is_file() else None
        inputs = check_named_inputs(inputs, self.inputs, where="inputs")
        if predictor is not None:
            feed = kind.onnx_feed(inputs)
            rows = len(next(iter(feed.values())))
            parts = [kind.prediction_from_onnx(predictor.run({k: v[i:i + _BATCH] for k, v in feed.items()}),
                                               self.metadata.get("problem", {}))
                     for i in range(0, rows, _BATCH)]
            return np.concatenate(parts)
        if "native" not in self.loaded:
            self.loaded["native"] = kind.load(self.path / self.metadata["model"]["file"])
        return kind.predict(self.loaded["native"], inputs)

    # --- OHLCV problems ---------------------------------------------------------------
    def price_problem(self) -> PriceProblem:
        cls = self.problem_class
        if not issubclass(cls, PriceProblem):
            raise ValueError(f"Version {self.version!r} is a {cls.type_name!r} model, not an OHLCV one: "
                             "use StoredModel.predict with its named inputs")
        return cls.from_schema(self.schema)

    def load_data(self, data_path: str | None) -> LoadedData:
        symbol = self.metadata["config"]["symbol"]
        return load_ohlcv(symbol, data_path, timeframe=self.schema["timeframe"],
                          covariates=tuple(self.schema.get("covariates", ())))

    def scaled_features(self, data: LoadedData):
        """Features in schema order, scaled with the stored scaler; checks names and sizes."""
        expected = list(self.schema["feature_names"])
        features = build_features(data.frame, calendar=set(BAR_CALENDAR_NAMES) <= set(expected),
                                  covariates=tuple(self.schema.get("covariates", ())))
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

    def to_target(self, outputs: np.ndarray) -> np.ndarray:
        outputs = np.asarray(outputs, dtype=np.float64)[:, 0]
        if self.schema.get("target_scaler"):
            outputs = StandardScaler.from_dict(self.schema["target_scaler"]).inverse_transform(outputs[:, None]).reshape(-1)
        return outputs

    def data_notes(self, data: LoadedData, data_path: str | None) -> list[str]:
        """One-line notes (not errors) when the data looks unlike what the model was trained on.

        Checked: a file name that names another known symbol and a price level far (over 5x) from the
        training data's; the loader's notes (resampled bars, day-first dates, gaps) are passed on.
        """
        notes = []
        symbol = self.metadata["config"]["symbol"]
        name = Path(str(data_path)).name.upper() if data_path else ""
        base = symbol[:-4] if symbol.endswith(("USDT", "BUSD", "USDC")) else symbol
        others = [s for s in KNOWN_BASES if s in name and s != base and not base.startswith(s)]
        if name and base not in name and others:
            notes.append(f"note: the file {Path(str(data_path)).name!r} looks like {others[0]} data, but the model was "
                         f"trained on {symbol}")
        # the loader's own notes: resampling to the model's bars, day-first dates, another separator, gaps
        notes.extend(f"note: {line}" for line in data.notes)
        prices = self.schema.get("close_range")
        if prices:
            last = float(data.frame["close"].iloc[-1])
            if last > 5 * prices[1] or last < prices[0] / 5:
                notes.append(f"note: the last close {last:,.2f} is far from the training closes "
                             f"({prices[0]:,.2f} .. {prices[1]:,.2f}); is this the same market?")
        return notes

    def identity(self) -> dict[str, Any]:
        """Which stored version answered: symbol, version, model type and the store folder it is kept under."""
        return {"symbol": self.metadata["config"]["symbol"], "version": self.version,
                "model_type": self.metadata["config"]["model_type"],
                "stored_as": self.metadata["config"].get("store_name", self.metadata["config"]["symbol"])}


def predict_next(symbol: str, version: str | None = None, data_path: str | None = None,
                 models_dir: str | None = None, target: str | None = None, timeframe: str | None = None,
                 model_type: str | None = None, uncertainty: bool = False, n_samples: int = 100,
                 interval: float | None = None) -> dict:
    """Predicts the bar ``horizon`` steps after the last bar of the data.

    ``target`` picks the stored problem (``return``, ``direction``, ``volatility``); by default the newest.
    A regression model stored with a conformal interval gives it under ``"interval"`` (at ``interval``, default
    its stored nominal level: the adaptive interval). With ``uncertainty=True`` the native model also gives the
    mean, standard deviation and central ``interval`` (default 0.8; sampled ``n_samples`` times, or read from
    quantile outputs), under ``"uncertainty"``.

    Raises:
        ValueError: uncertainty asked of a deterministic model, ``n_samples < 2``, a bad interval.

    Example:
        >>> predict_next("BTCUSDT")["predicted_close"]  # doctest: +SKIP
    """
    if interval is not None:
        interval = check_interval(interval)
    if uncertainty:
        n_samples, interval = check_n_samples(n_samples), DEFAULT_INTERVAL if interval is None else interval
    stored = StoredModel.load(symbol, version, models_dir, target, timeframe, model_type)
    # each problem reads its own data files (OHLCV bars, log files...)
    return stored.problem_class.predict_file(stored, data_path, uncertainty=uncertainty, n_samples=n_samples,
                                             interval=interval)


def follow(symbol: str, data_path: str, emit, version: str | None = None, models_dir: str | None = None,
           target: str | None = None, model_type: str | None = None, *, until_idle: float | None = None,
           poll_s: float = 1.0, from_start: bool = False) -> dict:
    """Scores a growing file with a stored model as lines are appended (log anomaly models: each anomalous window is
    passed to ``emit``), until Ctrl-C or ``until_idle`` seconds without a new line; returns what it read and found.

    Raises:
        ValueError: a model that cannot follow a file (a price model; one trained on a structured CSV or on
            session windows), ``poll_s`` or ``until_idle`` not > 0.

    Example:
        >>> follow("BGL", "/var/log/bgl.log", print, until_idle=60)  # doctest: +SKIP
    """
    for name, value in (("poll_s", poll_s), ("until_idle", until_idle)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise ValueError(f"{name} must be a number of seconds > 0. Received: {name}={value!r}")
    stored = StoredModel.load(symbol, version, models_dir, target, None, model_type)
    return stored.problem_class.follow_file(stored, data_path, emit, until_idle=until_idle, poll_s=poll_s,
                                            from_start=from_start)


def evaluate_stored(symbol: str, data_path: str | None, version: str | None = None,
                    models_dir: str | None = None, target: str | None = None, timeframe: str | None = None,
                    model_type: str | None = None) -> dict:
    """Metrics and naive baselines of a stored model on every window of the given data.

    Example:
        >>> evaluate_stored("BTCUSDT", "later_period.csv")["report"]["skill"]  # doctest: +SKIP
    """
    stored = StoredModel.load(symbol, version, models_dir, target, timeframe, model_type)
    return stored.problem_class.evaluate_file(stored, data_path)
