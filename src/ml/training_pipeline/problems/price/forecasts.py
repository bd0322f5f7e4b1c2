"""OHLCV forecasting problems: next return, direction, and realized volatility.

They share the data path (load, features without look-ahead, chronological splits with
gaps, train-only scaling, windows) and differ in the target, the naive baselines, the
metrics and what a prediction means; each difference is a method of its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ml.training_pipeline.common.markets import TIMEFRAMES, bars_per_day
from ml.training_pipeline.common.memory import check_memory
from ml.training_pipeline.common.metrics import (
    evaluate_direction,
    evaluate_returns,
    log_volatility_metrics,
    skill,
    trading_verdict,
)
from ml.training_pipeline.common.plots import plot_calibration, plot_predictions
from ml.training_pipeline.common.tensors import LazyInputs
from ml.training_pipeline.common.windows import WindowSet, prepare_data
from ml.training_pipeline.models.kinds import window_value_bytes
from ml.training_pipeline.models.kinds.base import FitData, LinearOffset
from ml.training_pipeline.models.registry import DEFAULT_INPUT_NAME, KNOWN_INPUT, TensorSpec
from ml.training_pipeline.models.tasks import Task, resolve_task
from ml.training_pipeline.problems.base import Problem, ProblemData, register_problem
from ml.training_pipeline.problems.price.features import CALENDAR_NAMES, WARMUP_BARS, build_features, calendar_window
from ml.training_pipeline.problems.price.ohlcv import load_ohlcv
from ml.training_pipeline.problems.price.serving import evaluate_price_file, predict_price_file

FEATURE_SCHEMA_VERSION = 2


class PriceProblem(Problem):
    """Base of the OHLCV problems: one float window named ``inputs`` per bar.

    Args:
        horizon: bars ahead the target looks; ``None`` takes the problem's default.
    """

    default_horizon: ClassVar[int] = 1
    task_name: ClassVar[str] = "regression"
    scale_target: ClassVar[bool] = False

    @classmethod
    def predict_file(cls, stored, data_path, **options):
        return predict_price_file(stored, data_path, **options)

    @classmethod
    def evaluate_file(cls, stored, data_path):
        return evaluate_price_file(stored, data_path)

    def __init__(self, horizon: int | None = None):
        self.horizon = self.default_horizon if horizon is None else horizon

    @property
    def task(self) -> Task:
        return resolve_task(self.task_name)

    @property
    def feedback_delay(self) -> int:
        return self.horizon

    # --- what subclasses define -------------------------------------------------------
    def target(self, close: pd.Series, timeframe: str) -> pd.Series:
        """The value to predict at each bar (NaN where the future is unknown)."""
        raise NotImplementedError

    def extras(self, frame: pd.DataFrame, timeframe: str) -> pd.DataFrame | None:
        """Per-bar inputs of the baselines (aligned to the OHLCV ``frame``); ``None`` when none are needed."""
        return None

    def fit_baselines(self, train: WindowSet, validation: WindowSet) -> dict[str, Any]:
        """Baseline parameters learned before the test part (stored in the schema): regressions may use the
        validation windows too (every bar before the test part), which makes them the stronger baseline."""
        return {}

    def evaluate_windows(self, predictions: np.ndarray, windows: WindowSet, params: dict[str, Any]) -> dict:
        raise NotImplementedError

    def next_prediction(self, value: float, last_close: float) -> dict[str, Any]:
        """What one prediction at the last bar means, for ``atb predict``."""
        raise NotImplementedError

    @classmethod
    def next_line(cls, result: dict[str, Any]) -> str:
        raise NotImplementedError

    @classmethod
    def interval_line(cls, low: dict[str, Any], high: dict[str, Any]) -> str:
        """The interval of ``atb predict --uncertainty`` from the bounds' :meth:`next_prediction` dicts."""
        key = next(iter(low))
        return f"{key} in [{low[key]:.6g}, {high[key]:.6g}]"

    def plot_series(self, predictions: np.ndarray, windows: WindowSet):
        """(actual, predicted, baseline, y label, caption) for the prediction plot."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------
    calendar_default: ClassVar[bool] = False
    """Whether the bars' calendar columns join the window when the config leaves ``calendar`` unset."""

    def prepare(self, config) -> ProblemData:
        loaded = load_ohlcv(config.symbol, config.data_path, config.timeframe, config.days, config.start_date,
                            config.end_date, exchange=config.exchange, covariates=config.covariates)
        calendar = self.calendar_default if config.calendar is None else config.calendar
        features = build_features(loaded.frame, calendar=calendar, covariates=config.covariates)
        # before the windows are made; a model kind that holds every window (LightGBM's bins) needs more
        check_memory(len(features), config.sequence_length, features.shape[1],
                     window_value_bytes=window_value_bytes(config.model_type))
        close = loaded.frame["close"]
        target = self.target(close, config.timeframe).reindex(features.index)
        extras = self.extras(loaded.frame, config.timeframe)
        extras = None if extras is None else extras.reindex(features.index)
        prepared = prepare_data(features, target, close.reindex(features.index), config.sequence_length,
                                self.horizon, config.validation_fraction, config.test_fraction,
                                scale_target=self.scale_target, extras=extras)
        params = self.fit_baselines(prepared.train, prepared.validation)
        offset = self.offset(params, prepared) if config.residual else None
        fit = lambda ws: FitData(self.window_inputs(ws.x, ws.time, config.timeframe, ws.extras),  # noqa: E731
                                 prepared.fit_targets(ws))
        n_features = len(prepared.feature_names)
        offered = self.offered_inputs(config.sequence_length, n_features)
        schema = {
            "schema_version": FEATURE_SCHEMA_VERSION,
            "feature_names": list(prepared.feature_names),
            "sequence_length": config.sequence_length,
            "horizon": self.horizon,
            "timeframe": config.timeframe,
            "target": self.name,
            "warmup_bars": WARMUP_BARS,
            "inputs": [spec.to_dict() for spec in offered],
            "known_names": list(CALENDAR_NAMES),
            "covariates": list(config.covariates),
            "input_shape": [config.sequence_length, n_features],
            "scaler": prepared.scaler.to_dict(),
            "target_scaler": prepared.target_scaler.to_dict() if prepared.target_scaler else None,
            "baselines": params,
            "offset": None if offset is None else offset.to_dict(),
            # the training closes' range: a prediction on a market far from it gets a note
            "close_range": [float(loaded.frame["close"].min()), float(loaded.frame["close"].max())],
        }
        span = lambda ws: [ws.time[0].isoformat(), ws.time[-1].isoformat()]  # noqa: E731
        return ProblemData(
            train=fit(prepared.train), validation=fit(prepared.validation), test=fit(prepared.test),
            inputs=offered, optional=tuple(s.name for s in offered[1:]),
            schema=schema, data=loaded.describe(), row_counts=prepared.row_counts,
            splits={"train": span(prepared.train), "validation": span(prepared.validation),
                    "test": span(prepared.test)},
            notes=loaded.notes, context=(prepared, params), offset=offset)

    def _trading(self, score: np.ndarray, windows: WindowSet) -> dict[str, Any]:
        """The long/short rule on a centred score (positive: long) over non-overlapping ``horizon``-bar periods, at
        :data:`~ml.training_pipeline.common.metrics.DEFAULT_COST_BPS`: what a statistically usable signal is worth."""
        every = slice(None, None, self.horizon)
        next_return = np.log(np.asarray(windows.future_close, np.float64) / np.asarray(windows.close, np.float64))
        return trading_verdict(score[every], next_return[every])

    def offset(self, params: dict[str, Any], prepared) -> LinearOffset | None:
        """The linear baseline the models learn the correction to (in fit space), or ``None`` when the problem has
        none worth correcting."""
        return None

    def offered_inputs(self, length: int, n_features: int) -> tuple[TensorSpec, ...]:
        """The window, and its calendar for the models that read inputs known in advance."""
        return (TensorSpec(DEFAULT_INPUT_NAME, (length, n_features)),
                TensorSpec(KNOWN_INPUT, (length + 1, len(CALENDAR_NAMES))))

    def window_inputs(self, x: np.ndarray, end_times: pd.DatetimeIndex, timeframe: str,
                      extras: Mapping[str, np.ndarray] | None = None) -> LazyInputs:
        """Every input a model may read for these windows: ``inputs`` and the calendar ``known`` (to the forecast
        bar); ``extras`` are the windows' baseline values (:meth:`extras` at each window's last bar)."""
        return LazyInputs({DEFAULT_INPUT_NAME: x},  # the calendar only for a model that reads it
                          {KNOWN_INPUT: lambda: calendar_window(end_times, x.shape[1], self.horizon, timeframe)})

    def to_prediction(self, outputs: np.ndarray, data: ProblemData) -> np.ndarray:
        prepared, _ = data.context
        return prepared.to_target(np.asarray(outputs)[:, :1])

    def evaluate(self, predictions: np.ndarray, data: ProblemData) -> dict[str, Any]:
        prepared, params = data.context
        return self.evaluate_windows(predictions, prepared.test, params)

    def plot(self, predictions: np.ndarray, data: ProblemData, history: dict, folder: Path, title: str) -> None:
        super().plot(predictions, data, history, folder, title)
        prepared, _ = data.context
        self.plot_test(np.asarray(predictions), prepared.test, folder, title)

    def plot_test(self, predictions: np.ndarray, windows: WindowSet, folder: Path, title: str) -> None:
        """The test part's figure (``predictions.png``): the forecast over time next to the actual values."""
        actual, predicted, baseline, ylabel, caption = self.plot_series(predictions, windows)
        plot_predictions(windows.time, actual, predicted, baseline, folder / "predictions.png", f"{title}: {caption}",
                         ylabel)

    @classmethod
    def example(cls) -> tuple[PriceProblem, dict[str, Any]]:
        """The problem on the last 60 days of the bundled BTCUSDT hourly bars."""
        return cls(), {"symbol": "BTCUSDT", "model_type": "lightgbm", "target": cls.name, "days": 60}

    @classmethod
    def from_schema(cls, schema: dict[str, Any]) -> PriceProblem:
        return cls(horizon=schema["horizon"])


class PriceReturn(PriceProblem):
    """Next-bar log return (regression on a train-scaled target), judged as a price forecast
    against persistence and a moving average."""

    name = type_name = "return"
    scale_target = True

    @property
    def store_key(self) -> str:
        # the user's guide stores price models under <symbol>/price/; versions stored under return/ are still found
        return "price"

    def target(self, close, timeframe):
        return np.log(close.shift(-self.horizon) / close)

    def evaluate_windows(self, predictions, windows, params):
        report = evaluate_returns(predictions, windows.close, windows.future_close, windows.moving_average)
        return {**report, "trading": self._trading(np.asarray(predictions, np.float64).reshape(-1), windows)}

    def summary(self, report):
        return {"rmse": report["model"]["rmse"], "persistence_rmse": report["persistence"]["rmse"],
                "skill": report["skill"], "directional_accuracy": report["model"]["directional_accuracy"]}

    @classmethod
    def summary_line(cls, m):
        return (f"rmse {m['rmse']:.2f} vs persistence {m['persistence_rmse']:.2f}, skill {m['skill']:+.4f}, "
                f"dir.acc {m['directional_accuracy']:.3f}")

    def next_prediction(self, value, last_close):
        return {"predicted_log_return": value, "predicted_close": last_close * float(np.exp(value)),
                "direction": "up" if value > 0 else "down"}

    @classmethod
    def interval_line(cls, low, high):
        return (f"close in [{low['predicted_close']:,.2f}, {high['predicted_close']:,.2f}] "
                f"(log return {low['predicted_log_return']:+.5f} .. {high['predicted_log_return']:+.5f})")

    @classmethod
    def next_line(cls, r):
        return (f"close {r['last_close']:.2f} -> predicted close in {r['horizon_bars']} x {r['timeframe']}: "
                f"{r['predicted_close']:.2f} ({r['direction']}, log return {r['predicted_log_return']:+.5f})")

    def plot_series(self, predictions, windows):
        return (windows.future_close, windows.close * np.exp(predictions), windows.close, "close",
                "next close on the test window")


class PriceDirection(PriceProblem):
    """Up or not over the horizon (binary), against the training set's majority class."""

    name = type_name = "direction"
    task_name = "binary"

    def target(self, close, timeframe):
        future = np.log(close.shift(-self.horizon) / close)
        return (future > 0).astype("float64").where(future.notna())

    def fit_baselines(self, train, validation):
        return {"majority_class": int(train.y.mean() >= 0.5)}

    def evaluate_windows(self, predictions, windows, params):
        report = evaluate_direction(predictions, windows.y, params["majority_class"])
        return {**report, "trading": self._trading(np.asarray(predictions, np.float64).reshape(-1) - 0.5, windows)}

    def summary(self, report):
        return {"accuracy": report["model"]["accuracy"], "f1": report["model"]["f1"],
                "roc_auc": report["model"].get("roc_auc", float("nan")),
                "majority_accuracy": report["majority"]["accuracy"]}

    @classmethod
    def summary_line(cls, m):
        return (f"accuracy {m.get('accuracy', float('nan')):.3f} vs majority {m.get('majority_accuracy', float('nan')):.3f}, "
                f"f1 {m.get('f1', float('nan')):.3f}, roc_auc {m.get('roc_auc', float('nan')):.3f}")

    def next_prediction(self, value, last_close):
        return {"probability_up": value, "direction": "up" if value >= 0.5 else "down"}

    @classmethod
    def next_line(cls, r):
        return f"P(up in {r['horizon_bars']} x {r['timeframe']}) = {r['probability_up']:.3f} ({r['direction']})"

    def plot_series(self, predictions, windows):
        return windows.y, predictions, None, "up", "P(up) on the test window"

    def plot_test(self, predictions, windows, folder, title):
        """A reliability diagram of P(up) on the test part (``calibration.png``): a 0/1 series over time is
        unreadable."""
        plot_calibration(np.asarray(predictions).reshape(-1), windows.y, folder / "calibration.png",
                         f"{title}: P(up {self.horizon} bar(s) ahead) on the test part, calibration")


def _log_realized_volatility(squared_returns: pd.Series, bars: int, per: int = 1) -> pd.Series:
    """``0.5 * log(sum of the last `bars` squared log returns / per)``; the floor keeps flat stretches finite."""
    return 0.5 * np.log(np.maximum(squared_returns.rolling(bars).sum() / per, 1e-20))


def _garman_klass(frame: pd.DataFrame) -> pd.Series:
    """Each bar's Garman-Klass (1980) variance from its open, high, low and close: a range estimator several times
    as efficient as the squared close-to-close return; negative values (a wide body in a narrow range) are 0."""
    range_term = 0.5 * np.log(frame["high"] / frame["low"]) ** 2
    body_term = (2 * np.log(2) - 1) * np.log(frame["close"] / frame["open"]) ** 2
    return (range_term - body_term).clip(lower=0)


BASELINE_INPUT = "baseline"
"""Name of the input holding each window's baseline columns (the extended HAR's regressors)."""


class RealizedVolatility(PriceProblem):
    """Log realized volatility of the next ``H`` bars: ``0.5 * log(sum_{i=1..H} r_{t+i}^2)``.

    Baselines on the same bars, each regression fitted by least squares on the training and validation
    windows (every bar before the test part):

    - persistence: the last ``H`` bars' realized volatility;
    - HAR-RV (Corsi 2009): the log realized volatility of the last day, week (7 days, per day) and month
      (30 days, per day);
    - calendar HAR: HAR-RV plus the day of week of the forecast window's middle (6 dummies);
    - extended HAR: the calendar HAR plus the last day's negative and positive semivariances (Patton and
      Sheppard 2015), the last 3 and 6 bars' realized volatility, the last day's negative return
      (leverage), the day and week terms one day earlier (what HAR-RV missed yesterday) and the last day's
      Garman-Klass range volatility (from open, high, low and close); fitted by least squares weighted
      toward recent bars (half-life :attr:`RECENCY_HALF_LIFE_DAYS`). Measured on 5 walk-forward folds of the
      bundled BTCUSDT hours (see docs/forecasting.md), each baseline's mean skill over HAR-RV: calendar
      +0.029, extended +0.057 (every fold above +0.02).

    With ``residual`` (the default) the models learn the correction to the extended HAR, which is part
    of the stored model (:class:`~ml.training_pipeline.models.LinearOffset`). Windows before a full
    month of history are dropped from every split alike.
    """

    name = type_name = "volatility"
    default_horizon = 24
    scale_target = True
    calendar_default = True

    HAR_COLUMNS = ("har_day", "har_week", "har_month")
    WEEKDAY_COLUMNS = tuple(f"weekday_{d}" for d in range(1, 7))
    EXTENDED_COLUMNS = ("semivariance_negative", "semivariance_positive", "rv_3", "rv_6", "leverage",
                        "har_day_previous", "har_week_previous", "range_day")
    BASELINES = {"har_rv": HAR_COLUMNS, "calendar_har": HAR_COLUMNS + WEEKDAY_COLUMNS,
                 "extended_har": HAR_COLUMNS + WEEKDAY_COLUMNS + EXTENDED_COLUMNS}
    """Each regression baseline's columns (an intercept is added)."""
    RESIDUAL_BASELINE = "extended_har"
    RECENCY_HALF_LIFE_DAYS = {"extended_har": 180.0}
    """Baselines fitted with weights ``0.5 ** (age in days / half-life)``: a bar half a year older counts half.
    Chosen on the walk-forward folds: 90, 180, 270 and 365 days all gave +0.055..+0.057 (unweighted +0.049);
    HAR-RV and the calendar HAR keep their textbook unweighted fit."""

    def __init__(self, horizon: int | None = None, residual_columns: tuple[str, ...] | None = None):
        super().__init__(horizon)
        # a stored model feeds its offset the columns it was trained with (earlier versions had fewer)
        self.residual_columns = tuple(residual_columns or self.BASELINES[self.RESIDUAL_BASELINE])

    @classmethod
    def from_schema(cls, schema):
        fitted = (schema.get("baselines") or {}).get(cls.RESIDUAL_BASELINE)
        return cls(horizon=schema["horizon"], residual_columns=tuple(fitted["columns"][1:]) if fitted else None)

    def target(self, close, timeframe):
        squared = np.log(close).diff() ** 2
        return _log_realized_volatility(squared, self.horizon).shift(-self.horizon)

    def extras(self, frame, timeframe):
        close = frame["close"]
        returns = np.log(close).diff()
        squared = returns**2
        day = bars_per_day(timeframe)
        # the weekday of the forecast window's middle bar: a 24-hour window mostly covers that day
        middle = close.index + pd.Timedelta(TIMEFRAMES.get(timeframe, timeframe)) * (1 + self.horizon) / 2
        weekday = np.asarray(middle.day_of_week)
        columns = {
            "persistence": _log_realized_volatility(squared, self.horizon),
            "har_day": _log_realized_volatility(squared, day),
            "har_week": _log_realized_volatility(squared, 7 * day, per=7),
            "har_month": _log_realized_volatility(squared, 30 * day, per=30),
            **{name: (weekday == d).astype(np.float64) for d, name in enumerate(self.WEEKDAY_COLUMNS, 1)},
            "semivariance_negative": _log_realized_volatility(returns.clip(upper=0) ** 2, day),
            "semivariance_positive": _log_realized_volatility(returns.clip(lower=0) ** 2, day),
            "rv_3": _log_realized_volatility(squared, 3),
            "rv_6": _log_realized_volatility(squared, 6),
            "leverage": returns.rolling(day).sum().clip(upper=0),
            "range_day": _log_realized_volatility(_garman_klass(frame), day),
        }
        columns["har_day_previous"] = columns["har_day"].shift(day)
        columns["har_week_previous"] = columns["har_week"].shift(day)
        return pd.DataFrame(columns, index=close.index)

    @staticmethod
    def _design(windows: WindowSet, columns) -> np.ndarray:
        return np.column_stack([np.ones(len(windows)), *(windows.extras[c] for c in columns)])

    def fit_baselines(self, train, validation):
        params = {}
        target = np.r_[train.y, validation.y].astype(np.float64)
        times = train.time.append(validation.time)
        age_days = np.asarray((times[-1] - times) / pd.Timedelta("1D"), np.float64)
        for name, columns in self.BASELINES.items():
            design = np.vstack([self._design(train, columns), self._design(validation, columns)])
            half_life = self.RECENCY_HALF_LIFE_DAYS.get(name)
            root = np.ones(len(target)) if half_life is None else np.sqrt(0.5 ** (age_days / half_life))
            coefficients, *_ = np.linalg.lstsq(design * root[:, None], target * root, rcond=None)
            params[name] = {"coefficients": [float(c) for c in coefficients], "columns": ["intercept", *columns],
                            **({"half_life_days": half_life} if half_life else {})}
        # the names stored by earlier versions (evaluate_file reads them from old schemas too)
        params["har_coefficients"], params["har_columns"] = params["har_rv"]["coefficients"], params["har_rv"]["columns"]
        return params

    def offset(self, params, prepared):
        fitted = params[self.RESIDUAL_BASELINE]
        (mean,), (scale,) = prepared.target_scaler.mean, prepared.target_scaler.scale
        intercept, *weights = fitted["coefficients"]
        # in fit space: (x @ w + b - mean) / scale
        return LinearOffset(BASELINE_INPUT, tuple(w / scale for w in weights), (intercept - mean) / scale,
                            tuple(self.BASELINES[self.RESIDUAL_BASELINE]))

    def offered_inputs(self, length, n_features):
        return (*super().offered_inputs(length, n_features),
                TensorSpec(BASELINE_INPUT, (len(self.residual_columns),)))

    def window_inputs(self, x, end_times, timeframe, extras=None):
        inputs = super().window_inputs(x, end_times, timeframe)
        if extras:
            inputs[BASELINE_INPUT] = np.column_stack(
                [np.asarray(extras[c], np.float32) for c in self.residual_columns]).astype(np.float32)
        return inputs

    def evaluate_windows(self, predictions, windows, params):
        actual = windows.y.astype(np.float64)
        model = log_volatility_metrics(predictions, actual)
        report = {"model": model, "persistence": log_volatility_metrics(windows.extras["persistence"], actual)}
        # versions stored before the calendar baselines have only HAR-RV's coefficients
        fitted = {name: params[name] for name in self.BASELINES if name in params} or {
            "har_rv": {"coefficients": params["har_coefficients"], "columns": params["har_columns"]}}
        for name, baseline in fitted.items():
            forecast = self._design(windows, baseline["columns"][1:]) @ np.asarray(baseline["coefficients"])
            report[name] = log_volatility_metrics(forecast, actual)
        report["skill"] = skill(model["rmse"], report["persistence"]["rmse"])
        for name in fitted:
            report[f"skill_{name}"] = skill(model["rmse"], report[name]["rmse"])
        return {**report, "n": int(len(actual)), "horizon_bars": self.horizon}

    def summary(self, report):
        return {"rmse": report["model"]["rmse"], "persistence_rmse": report["persistence"]["rmse"],
                "har_rv_rmse": report["har_rv"]["rmse"], "skill": report["skill"],
                "skill_har_rv": report["skill_har_rv"],
                **({"skill_calendar_har": report["skill_calendar_har"]} if "skill_calendar_har" in report else {})}

    @classmethod
    def summary_line(cls, m):
        calendar = f" / {m['skill_calendar_har']:+.4f} vs calendar HAR" if "skill_calendar_har" in m else ""
        return (f"log-vol rmse {m['rmse']:.3f} vs persistence {m['persistence_rmse']:.3f} / HAR-RV "
                f"{m['har_rv_rmse']:.3f}, skill {m['skill']:+.4f} / {m['skill_har_rv']:+.4f}{calendar}")

    def next_prediction(self, value, last_close):
        return {"predicted_log_volatility": value, "predicted_volatility": float(np.exp(value))}

    @classmethod
    def interval_line(cls, low, high):
        return f"volatility in [{low['predicted_volatility']:.6g}, {high['predicted_volatility']:.6g}]"

    @classmethod
    def next_line(cls, r):
        return (f"realized volatility of the next {r['horizon_bars']} x {r['timeframe']} bars: "
                f"{100 * r['predicted_volatility']:.2f}% (log {r['predicted_log_volatility']:+.3f})")

    def plot_series(self, predictions, windows):
        return (windows.y, predictions, windows.extras["persistence"], "log realized volatility",
                f"log realized volatility of the next {self.horizon} bars")


for _cls in (PriceReturn, PriceDirection, RealizedVolatility):
    register_problem(_cls, from_config=True)

