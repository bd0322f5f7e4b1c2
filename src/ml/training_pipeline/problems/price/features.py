"""Price and volume features and prediction targets, all free of look-ahead.

Every feature at bar ``t`` is computed from bars ``<= t`` only (rolling windows, EMAs and
``shift`` with positive lags). Indicators come from the maintained ``ta`` library. Targets
look ``horizon`` bars ahead by construction and are never fed to the model as inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.training_pipeline.common.markets import TIMEFRAMES

FEATURE_NAMES: tuple[str, ...] = (
    "log_return", "body", "range", "upper_wick", "lower_wick", "volatility_6", "volatility_24",
    "log_volume_change", "volume_ratio_24", "rsi_14", "macd_diff", "bollinger_pband", "atr_14",
    "close_to_ema_24", "momentum_24",
)
"""The 15 features, in model-input order."""

WARMUP_BARS = 50
"""Leading bars dropped because the longest indicator (MACD: 26 + 9 EMA) has not settled."""


BAR_CALENDAR_NAMES: tuple[str, ...] = ("bar_hour_sin", "bar_hour_cos", "bar_weekday_sin", "bar_weekday_cos")
"""Window columns added with ``calendar=True``: each bar's own hour of day and day of week (every family sees them)."""


def build_features(ohlcv: pd.DataFrame, calendar: bool = False, covariates: tuple[str, ...] = ()) -> pd.DataFrame:
    """Computes :data:`FEATURE_NAMES` from an OHLCV frame, dropping the warm-up bars.

    Prices enter only as ratios and log differences, so the features are comparable
    across price levels; volume enters as log changes (``log1p`` keeps zero-volume
    maintenance bars finite).

    Args:
        ohlcv: float ``open, high, low, close, volume`` sorted by time.
        calendar: also the :data:`BAR_CALENDAR_NAMES` columns (known for every bar, so no look-ahead).
        covariates: columns of ``ohlcv`` appended as they are, last (the user's own inputs: each bar's value must be
            known when the bar closes; a value about the future that is known in advance, such as "an event in the
            next 24 hours", belongs in the column at the bar where it becomes known). Scaled with the other columns.

    Returns:
        A float64 frame with the same index minus the first :data:`WARMUP_BARS` rows.

    Example:
        >>> features = build_features(load_ohlcv("BTCUSDT", days=30).frame)  # doctest: +SKIP
        >>> list(features.columns) == list(FEATURE_NAMES)  # doctest: +SKIP
        True
    """
    import ta

    open_, high, low, close, volume = (ohlcv[c] for c in ("open", "high", "low", "close", "volume"))
    log_return = np.log(close).diff()
    log_volume = np.log1p(volume)
    columns = {
        "log_return": log_return,
        "body": (close - open_) / open_,
        "range": (high - low) / close,
        "upper_wick": (high - np.maximum(open_, close)) / close,
        "lower_wick": (np.minimum(open_, close) - low) / close,
        "volatility_6": log_return.rolling(6).std(),
        "volatility_24": log_return.rolling(24).std(),
        "log_volume_change": log_volume.diff(),
        "volume_ratio_24": log_volume - log_volume.rolling(24).mean(),
        "rsi_14": ta.momentum.RSIIndicator(close, window=14).rsi() / 100.0 - 0.5,
        "macd_diff": ta.trend.MACD(close).macd_diff() / close,
        "bollinger_pband": ta.volatility.BollingerBands(close, window=20).bollinger_pband(),
        "atr_14": ta.volatility.AverageTrueRange(high, low, close, window=14).average_true_range() / close,
        "close_to_ema_24": close / ta.trend.EMAIndicator(close, window=24).ema_indicator() - 1.0,
        "momentum_24": np.log(close / close.shift(24)),
    }
    frame = pd.DataFrame(columns, index=ohlcv.index)[list(FEATURE_NAMES)].iloc[WARMUP_BARS:]
    # A flat Bollinger band (constant price, e.g. maintenance) divides by zero: centre it.
    frame["bollinger_pband"] = frame["bollinger_pband"].replace([np.inf, -np.inf], np.nan).fillna(0.5)
    if calendar:
        hour = 2 * np.pi * (frame.index.hour + frame.index.minute / 60) / 24
        weekday = 2 * np.pi * frame.index.day_of_week / 7
        for name, values in zip(BAR_CALENDAR_NAMES, (np.sin(hour), np.cos(hour), np.sin(weekday), np.cos(weekday)),
                                strict=True):
            frame[name] = np.asarray(values, np.float64)
    for name in covariates:
        frame[name] = ohlcv[name].iloc[WARMUP_BARS:].to_numpy(np.float64)
    return frame.astype("float64")


RESERVED_NAMES: frozenset[str] = frozenset(
    (*FEATURE_NAMES, *BAR_CALENDAR_NAMES, "open", "high", "low", "close", "volume", "time", "timestamp", "date"))
"""Names a covariate column cannot have (they are columns the library computes or reads itself)."""


CALENDAR_NAMES: tuple[str, ...] = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")
"""Columns of :func:`calendar_window`: values known in advance for any bar, past or future."""


def calendar_window(end_times: pd.DatetimeIndex, length: int, horizon: int, timeframe: str) -> np.ndarray:
    """Calendar features of each window's ``length`` bars and of the bar ``horizon`` steps after it.

    Times are counted back and forward from each window's last bar in steps of ``timeframe``
    (a gap inside a window shifts its earlier steps' calendar; the loader reports gaps).

    Args:
        end_times: time of each window's last bar.
        length: bars per window.
        horizon: bars between the last bar and the forecast bar.
        timeframe: bar length (``"1h"``, ``"4h"``, ``"1d"``...).

    Returns:
        ``(n, length + 1, 4)`` float32: sin/cos of the hour of day and of the day of week.

    Example:
        >>> t = pd.DatetimeIndex(["2024-01-01 23:00"])
        >>> calendar_window(t, length=2, horizon=1, timeframe="1h").shape
        (1, 3, 4)
    """
    step = pd.Timedelta(TIMEFRAMES.get(timeframe, timeframe))  # "5m" is 5 minutes, as on the exchanges
    offsets = np.r_[np.arange(-(length - 1), 1), horizon]
    times = pd.DatetimeIndex(np.asarray(end_times, dtype="datetime64[ns]")[:, None].repeat(len(offsets), 1).ravel()) \
        + pd.to_timedelta(np.tile(offsets, len(end_times)) * step.value, unit="ns")
    hour = 2 * np.pi * (times.hour.to_numpy() + times.minute.to_numpy() / 60) / 24
    weekday = 2 * np.pi * times.dayofweek.to_numpy() / 7
    table = np.stack([np.sin(hour), np.cos(hour), np.sin(weekday), np.cos(weekday)], axis=-1)
    return table.reshape(len(end_times), len(offsets), len(CALENDAR_NAMES)).astype(np.float32)
