"""Bundled real sample data.

- ``BTCUSDT_1h.csv.gz``: Binance BTCUSDT USDT-margined futures, 1h klines. 24,631 hourly bars from
  2019-09-08 17:00 UTC to 2022-06-30 23:00 UTC, in Binance's kline export layout (``time`` in ms since
  epoch, ``open, high, low, close, volume, closetime, assetvolume, trade_count, taker_buy_asset_volume,
  taker_buy_quote_volume, ignore``). Candlestick data is (c) Binance, shipped for research and testing.
- ``BGL_2k.log_structured.csv.gz``: 2,000 parsed BlueGene/L log lines with labels (``Label`` is ``-``
  for a normal line, an alert category otherwise: 143 alert lines), and
  ``OpenStack_2k.log_structured.csv.gz``: 2,000 parsed OpenStack nova lines (no labels), both from
  Loghub (https://github.com/logpai/loghub; Zhu et al., ISSRE 2023; BGL from Oliner and Stearley,
  DSN 2007; OpenStack from Du et al., CCS 2017), free for research.
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


BUNDLED_LOGS: dict[str, str] = {"bgl": "BGL_2k.log_structured.csv.gz", "openstack": "OpenStack_2k.log_structured.csv.gz"}
"""Log format -> bundled structured log sample."""


def bundled_log_path(log_format: str) -> Path:
    """Path of the bundled structured log sample of a format.

    Raises:
        ValueError: if no sample is bundled for the format.

    Example:
        >>> bundled_log_path("bgl").name
        'BGL_2k.log_structured.csv.gz'
    """
    if log_format not in BUNDLED_LOGS:
        raise ValueError(f"No bundled log sample for log format {log_format!r}. Bundled: {', '.join(BUNDLED_LOGS)}; "
                         f"pass --data FILE. Received: log_format={log_format!r}")
    return Path(str(resources.files(__name__).joinpath(BUNDLED_LOGS[log_format])))
