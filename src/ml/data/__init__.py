"""Bundled real sample data: Binance BTCUSDT USDT-margined futures, 1h klines.

24,631 hourly bars from 2019-09-08 17:00 UTC to 2022-06-30 23:00 UTC, in Binance's kline
export layout (``time`` in ms since epoch, ``open, high, low, close, volume, closetime,
assetvolume, trade_count, taker_buy_asset_volume, taker_buy_quote_volume, ignore``).
Candlestick data is (c) Binance, shipped for research and testing.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_SYMBOLS: dict[str, str] = {"BTCUSDT": "BTCUSDT_1h.csv.gz"}
"""Symbol -> bundled file name."""


def bundled_sample_path(symbol: str = "BTCUSDT") -> Path:
    """Path of the bundled CSV (gzip) for ``symbol``.

    Raises:
        ValueError: if no sample is bundled for ``symbol``.

    Example:
        >>> bundled_sample_path("BTCUSDT").name
        'BTCUSDT_1h.csv.gz'
    """
    key = str(symbol).upper()
    if key not in BUNDLED_SYMBOLS:
        raise ValueError(
            f"No bundled sample for symbol {symbol!r}. Bundled: {', '.join(BUNDLED_SYMBOLS)}; "
            f"pass --data PATH for other symbols. Received: symbol={symbol!r}"
        )
    return Path(str(resources.files(__name__).joinpath(BUNDLED_SYMBOLS[key])))
