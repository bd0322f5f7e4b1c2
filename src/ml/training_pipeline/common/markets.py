"""The market vocabulary: trading symbol names (which also name store folders) and bar timeframes.

Example:
    >>> check_symbol("btcusdt"), list(TIMEFRAMES)
    ('BTCUSDT', ['1m', '5m', '15m', '30m', '1h', '4h', '1d'])
"""

from __future__ import annotations

import re

TIMEFRAMES: dict[str, str] = {"1m": "1min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "4h": "4h",
                              "1d": "1D"}
"""Bar timeframes a run can ask for (the exchanges' names) -> pandas frequency."""


def bars_per_day(timeframe: str) -> int:
    """Bars of ``timeframe`` in one day (at least 1): the horizon of daily terms such as HAR's.

    Example:
        >>> bars_per_day("1h"), bars_per_day("5m"), bars_per_day("1d")
        (24, 288, 1)
    """
    import pandas as pd

    return max(1, round(pd.Timedelta("1D") / pd.Timedelta(TIMEFRAMES.get(timeframe, timeframe))))

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")


def check_symbol(symbol: object) -> str:
    """Upper-cases a trading symbol and rejects anything that could escape a folder.

    Example:
        >>> check_symbol("btcusdt")
        'BTCUSDT'
    """
    text = str(symbol).strip().upper()
    if not _SYMBOL.match(text) or ".." in text:
        raise ValueError(
            "symbol must be letters, digits, '.', '_' or '-' (at most 32, no path characters), "
            f"e.g. BTCUSDT. Received: symbol={symbol!r}"
        )
    return text
