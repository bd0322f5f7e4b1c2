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


FEATURE_CHUNK_ROWS = 250_000
"""Bars per chunk when :func:`build_features` computes a long series piece by piece (memory flat in the rows)."""

CHUNK_CARRY_BARS = 2_000
"""Bars before each chunk that its indicators warm up on. The exponential averages (EMA 24, MACD's 26 + 9,
Wilder's RSI and ATR smoothing over 14) forget their start by ``(1 - alpha) ** bars``: below ``1e-60`` after 2,000
bars, so they agree with the whole series' exactly; pandas' rolling means and deviations keep running sums whose
rounding depends on where they started, which leaves the Bollinger position within ``1e-9`` of the whole series'
(on the bundled data), far below the float32 resolution of the model's scaled inputs (compared in the tests)."""


def build_features(ohlcv: pd.DataFrame, calendar: bool = False, covariates: tuple[str, ...] = (),
                   chunk_rows: int | None = FEATURE_CHUNK_ROWS) -> pd.DataFrame:
    """Computes :data:`FEATURE_NAMES` from an OHLCV frame, dropping the warm-up bars.

    Prices enter only as ratios and log differences, so the features are comparable
    across price levels; volume enters as log changes (``log1p`` keeps zero-volume
    maintenance bars finite). A series longer than ``chunk_rows`` is computed in chunks, each warmed up on the
    :data:`CHUNK_CARRY_BARS` bars before it, into one float64 array: the indicators' temporaries stay the size of
    a chunk whatever the length of the series.

    Args:
        ohlcv: float ``open, high, low, close, volume`` sorted by time.
        calendar: also the :data:`BAR_CALENDAR_NAMES` columns (known for every bar, so no look-ahead).
        covariates: columns of ``ohlcv`` appended as they are, last (the user's own inputs: each bar's value must be
            known when the bar closes; a value about the future that is known in advance, such as "an event in the
            next 24 hours", belongs in the column at the bar where it becomes known). Scaled with the other columns.
        chunk_rows: bars per chunk (``None``: the whole series at once).

    Returns:
        A float64 frame with the same index minus the first :data:`WARMUP_BARS` rows.

    Example:
        >>> from ml.training_pipeline.problems.price.ohlcv import load_ohlcv
        >>> bars = load_ohlcv("BTCUSDT", days=30).frame
        >>> features = build_features(bars)
        >>> list(features.columns) == list(FEATURE_NAMES), len(bars) - len(features)
        (True, 50)
        >>> bool(np.allclose(build_features(bars, chunk_rows=200), features, rtol=0, atol=1e-8))
        True
    """
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1):
        raise ValueError(f"chunk_rows must be a positive int or None. Received: chunk_rows={chunk_rows!r}")
    index = ohlcv.index[WARMUP_BARS:]
    names = [*FEATURE_NAMES, *(BAR_CALENDAR_NAMES if calendar else ()), *covariates]
    values = np.empty((len(index), len(names)), np.float64)
    step = len(ohlcv) if chunk_rows is None else chunk_rows
    for start in range(WARMUP_BARS, len(ohlcv), max(step, 1)):
        stop = min(start + step, len(ohlcv))
        first = max(0, start - CHUNK_CARRY_BARS)
        chunk = _indicators(ohlcv.iloc[first:stop])
        values[start - WARMUP_BARS:stop - WARMUP_BARS, :len(FEATURE_NAMES)] = chunk[start - first:]
    column = len(FEATURE_NAMES)
    if calendar:
        hour = 2 * np.pi * (index.hour + index.minute / 60) / 24
        weekday = 2 * np.pi * index.day_of_week / 7
        for part in (np.sin(hour), np.cos(hour), np.sin(weekday), np.cos(weekday)):
            values[:, column] = part
            column += 1
    for name in covariates:
        values[:, column] = ohlcv[name].to_numpy(np.float64)[WARMUP_BARS:]
        column += 1
    # one float64 block, not copied: prepare_data reads it as it is
    return pd.DataFrame(values, index=index, columns=names, copy=False)


def _indicators(ohlcv: pd.DataFrame) -> np.ndarray:
    """The :data:`FEATURE_NAMES` columns of every bar of ``ohlcv`` (the first ones not yet warmed up)."""
    import ta

    open_, high, low, close, volume = (ohlcv[c] for c in ("open", "high", "low", "close", "volume"))
    log_return = np.log(close).diff()
    log_volume = np.log1p(volume)
    # a flat Bollinger band (constant price, e.g. maintenance) divides by zero: centred
    pband = ta.volatility.BollingerBands(close, window=20).bollinger_pband().replace([np.inf, -np.inf], np.nan)
    pband.iloc[WARMUP_BARS:] = pband.iloc[WARMUP_BARS:].fillna(0.5)
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
        "bollinger_pband": pband,
        "atr_14": ta.volatility.AverageTrueRange(high, low, close, window=14).average_true_range() / close,
        "close_to_ema_24": close / ta.trend.EMAIndicator(close, window=24).ema_indicator() - 1.0,
        "momentum_24": np.log(close / close.shift(24)),
    }
    return np.stack([np.asarray(columns[name], np.float64) for name in FEATURE_NAMES], axis=1)


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
