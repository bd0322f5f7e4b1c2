"""Loading and validating OHLCV data: bundled sample, CSV/Parquet files, or an exchange.

Two file layouts are recognised: Binance kline exports (``time``/``open_time`` in ms since
epoch, optionally without a header row) and generic OHLCV tables (a datetime column or
index under a common name, case-insensitive column names, an unnamed index column
tolerated). The result is always a frame indexed by UTC bar open time with float columns
``open, high, low, close, volume``, sorted and validated.

Nothing is repaired silently: duplicate or unsorted timestamps, NaN/inf and non-numeric
values are errors; gaps (missing bars) are counted and reported, and left as they are.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data import bundled_sample_path
from ml.training_pipeline.common.arguments import quoted, shortened
from ml.training_pipeline.common.data_files import DataError, data_files
from ml.training_pipeline.common.markets import TIMEFRAMES

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")
_SLASH_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")
BINANCE_COLUMNS: tuple[str, ...] = (
    "time", "open", "high", "low", "close", "volume", "closetime", "assetvolume", "trade_count",
    "taker_buy_asset_volume", "taker_buy_quote_volume", "ignore",
)
TIME_COLUMNS: tuple[str, ...] = ("time", "open_time", "opentime", "timestamp", "datetime", "date", "ts", "unnamed: 0", "index")
BINANCE = "binance-klines"
GENERIC = "generic-ohlcv"
EXCHANGE_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class LoadedData:
    """A validated OHLCV frame and where it came from.

    Attributes:
        frame: float ``open, high, low, close, volume`` indexed by UTC bar open time.
        source: file path, ``bundled:BTCUSDT_1h.csv.gz`` or ``exchange:binance``.
        layout: ``binance-klines``, ``generic-ohlcv`` or ``exchange``.
        timeframe: the bar size of ``frame``.
        notes: what a user should know (gaps found, resampling done).
    """

    frame: pd.DataFrame
    source: str
    layout: str
    timeframe: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict:
        """Summary for metadata and the CLI."""
        idx = self.frame.index
        return {"source": self.source, "layout": self.layout, "timeframe": self.timeframe, "rows": len(self.frame),
                "start": idx[0].isoformat() if len(idx) else None, "end": idx[-1].isoformat() if len(idx) else None,
                "notes": list(self.notes)}


def read_table(path: str | Path, covariates: tuple[str, ...] | None = None,
               rows: tuple[int, int] | None = None) -> pd.DataFrame:
    """Reads a CSV (optionally compressed) or Parquet file into a raw frame.

    Args:
        path: the file.
        covariates: when given, a Parquet file is read for the columns an OHLCV series uses only (time, prices,
            volume, Binance's close time, these covariates; any case), which Parquet stores apart: a Binance
            export's trade counts and quote volumes are never read. ``None`` reads every column.
        rows: a Parquet file's rows ``[first, stop)`` only (read by row group).
    """
    path = Path(path)
    if not path.is_file():
        what = ("Data path is a folder, not a data file" if path.is_dir() else
                "Data path is a broken symbolic link or a link loop" if path.is_symlink() else "Data file not found")
        raise DataError(f"{what}. Received: {str(path)!r}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = _read_parquet(path, covariates, rows)
            if not isinstance(frame.index, pd.RangeIndex):
                frame = frame.reset_index()
            return _check_rows(frame, path)
        frame = pd.read_csv(_check_text(path))
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{str(path)!r} is empty: no header and no rows") from None
    except ImportError as error:  # a Parquet engine missing from a custom install
        raise DataError(f"Reading Parquet needs pyarrow: pip install pyarrow ({str(error).splitlines()[0]})") from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DataError(f"Cannot read {str(path)!r} as CSV or Parquet: {shortened(str(error).splitlines()[0])}") from None
    frame = _other_separator(frame, path)
    if len(frame.columns) and all(_is_number(c) for c in frame.columns):
        # a Binance export without a header row: the first row was taken as names
        frame = pd.read_csv(path, header=None)
        if len(frame.columns) not in (len(BINANCE_COLUMNS), len(BINANCE_COLUMNS) - 1):
            raise DataError(f"{str(path)!r} has no header and {len(frame.columns)} columns; a Binance kline "
                            f"export has {len(BINANCE_COLUMNS)}")
        frame.columns = list(BINANCE_COLUMNS[: len(frame.columns)])
    return _check_rows(frame, path)


def _read_parquet(path: Path, covariates: tuple[str, ...] | None, rows: tuple[int, int] | None = None) -> pd.DataFrame:
    """A Parquet file as a frame, only the columns a series uses when ``covariates`` is given, only the row groups
    that hold ``rows`` (``[first, stop)``, then cut to them) when given; arrow's buffers are handed to pandas column
    by column and the pool's freed memory returned, so the peak is the frame's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = None
    if covariates is not None:
        wanted = {*TIME_COLUMNS, *OHLCV, "close_time", "closetime", *(c.strip().lower() for c in covariates)}
        columns = [f.name for f in pq.read_schema(path) if f.name.strip().lower() in wanted or _is_time_type(f.type)]
    if rows is None:
        table = pq.read_table(path, columns=columns, use_pandas_metadata=True)
    else:
        parquet = pq.ParquetFile(path)
        sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        groups = [i for i in range(len(sizes)) if starts[i] < rows[1] and starts[i + 1] > rows[0]]
        table = parquet.read_row_groups(groups, columns=columns, use_pandas_metadata=True)
        table = table.slice(rows[0] - int(starts[groups[0]]), rows[1] - rows[0])
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def _is_time_type(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)


def time_column_of(columns: dict[str, bool]) -> str | None:
    """The column a series takes its times from, of ``{name: whether it holds dates}``: the first of
    :data:`TIME_COLUMNS` by name (any case, spaces stripped), else the first column of dates.

    Example:
        >>> time_column_of({"Close": False, "Open_Time": False}), time_column_of({"when": True}), time_column_of({})
        ('Open_Time', 'when', None)
    """
    names = {str(name).strip().lower(): name for name in columns}
    return next((names[c] for c in TIME_COLUMNS if c in names), None) or \
        next((name for name, dated in columns.items() if dated), None)


def _parquet_times(path: Path) -> pd.DatetimeIndex | None:
    """The bar times of a Parquet file from its time column alone (``None``: no column a series would take)."""
    import pyarrow.parquet as pq

    column = time_column_of({f.name: _is_time_type(f.type) for f in pq.read_schema(path)})
    if column is None:
        return None
    values = pq.read_table(path, columns=[column]).column(0).to_pandas()
    return _parse_time(values, column.strip().lower())[0]


def _rows_in_dates(paths: list[Path], dates: tuple[int | None, str | None, str | None]
                   ) -> dict[Path, tuple[int, int] | None]:
    """Per Parquet file, the rows ``[first, stop)`` that the date filter (``days``, ``start_date``, ``end_date``, as
    :func:`filter_dates` applies them to the joined series) keeps, or ``None`` for a file with no such row; found
    from the time columns alone, so the other columns of the rows left out are never read. A file left out of the
    answer is read whole: one whose kept rows are not one run (unsorted times, which validation refuses), or every
    file when one has no time column (the layout check names what is missing)."""
    times = {path: _parquet_times(path) for path in paths}
    if any(t is None for t in times.values()):
        return {}
    indexes = [t.as_unit("ns") for t in times.values()]
    joined = indexes[0].append(indexes[1:]) if len(indexes) > 1 else indexes[0]
    kept = filter_dates(pd.DataFrame({"bar": np.zeros(len(joined), np.int8)}, index=joined.sort_values()), *dates).index
    first, last = kept[0], kept[-1]
    ranges: dict[Path, tuple[int, int] | None] = {}
    for path, index in times.items():
        inside = np.flatnonzero((index >= first) & (index <= last))
        if not len(inside):
            ranges[path] = None
        elif inside[-1] - inside[0] + 1 == len(inside):
            ranges[path] = (int(inside[0]), int(inside[-1]) + 1)
    return ranges


def read_ohlcv_files(data_path: str | Path, covariates: tuple[str, ...] = (),
                     dates: tuple[int | None, str | None, str | None] | None = None) -> tuple[pd.DataFrame, str]:
    """Reads the file(s) ``data_path`` names (:func:`data_files`) as one validated series: each file is read and
    validated alone, then the series are joined in time. Files of different layouts, or whose bars overlap (the
    same month downloaded twice), are refused with the two files named; nothing is repaired silently.

    ``dates`` (``days``, ``start_date``, ``end_date``) is applied while Parquet files are read: their time columns
    first, then only the row groups of the bars kept (years of minute bars for the last 30 days read a month, not
    the years). The caller applies :func:`filter_dates` to the result as to any series (the same bars).

    Returns:
        (the validated OHLCV frame, the layout name), as :func:`normalize_ohlcv`.
    """
    paths = data_files(data_path)
    parquet = all(path.suffix.lower() in (".parquet", ".pq") for path in paths)
    ranges = _rows_in_dates(paths, dates) if parquet and dates is not None and any(dates) else {}
    parts = []
    for path in paths:
        if path in ranges and ranges[path] is None:  # none of its bars in the dates
            continue
        frame, layout = normalize_ohlcv(read_table(path, covariates, ranges.get(path)), str(path), covariates)
        parts.append((frame, layout, path))
    if len(parts) == 1:
        return parts[0][0], parts[0][1]
    layouts = {layout for _, layout, _ in parts}
    if len(layouts) > 1:
        first, other = parts[0], next(p for p in parts if p[1] != parts[0][1])
        raise DataError(f"The files of {str(data_path)!r} mix layouts: {first[2].name} is {first[1]}, {other[2].name} "
                        f"is {other[1]}. Accepted: files of one layout")
    parts.sort(key=lambda part: part[0].index[0])
    for (before, _, before_path), (after, _, after_path) in zip(parts, parts[1:], strict=False):
        if after.index[0] <= before.index[-1]:
            raise DataError(f"{before_path.name} and {after_path.name} overlap: {before_path.name} ends at "
                            f"{before.index[-1]}, {after_path.name} starts at {after.index[0]}. Remove one copy")
    joined = pd.concat([frame for frame, _, _ in parts])
    joined.attrs["notes"] = [f"{len(parts)} files joined ({parts[0][2].name} .. {parts[-1][2].name})",
                             *(note for frame, _, _ in parts for note in frame.attrs.get("notes", []))]
    return joined, parts[0][1]


def _check_text(path: Path) -> Path:
    """Refuses, from its first 4 KiB, a file that pandas would read for minutes as one huge text 'value': binary
    content (NUL bytes) that is not a compressed CSV pandas can open."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head and not head.startswith(_COMPRESSED_MAGIC):
        raise DataError(f"{str(path)!r} is not CSV text: its first {len(head)} bytes hold NUL bytes (a binary file). "
                        "Accepted: CSV (optionally .gz/.bz2/.zip/.xz/.zst compressed) or Parquet")
    return path


_COMPRESSED_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")


def _check_rows(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if frame.empty:
        raise DataError(f"{str(path)!r} has a header ({shortened(', '.join(map(str, frame.columns[:6])))}) but no rows")
    return frame


SEPARATORS = {";": "';'", "\t": "tab", "|": "'|'"}


def _other_separator(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """A CSV whose fields are split by ';', tab or '|' is read with that separator (the note says so)."""
    if len(frame.columns) != 1:
        return frame
    header = str(frame.columns[0])
    for separator, name in SEPARATORS.items():
        if header.count(separator) >= 4:
            reread = pd.read_csv(path, sep=separator)
            reread.attrs["note"] = f"read {path.name} with {name} as the field separator"
            return reread
    return frame

def _is_number(text: object) -> bool:
    try:
        float(str(text))
        return True
    except ValueError:
        return False


def _day_first(values: pd.Series) -> tuple[bool | None, str]:
    """For ``dd/mm/yyyy``-like text: ``True`` when a first field > 12 proves day-first, ``False`` when a second
    field > 12 proves month-first, ``None`` when every date reads both ways (or the text is not of that form)."""
    parts = values.astype(str).str.extract(_SLASH_DATE)
    if not len(parts) or parts.isna().any().any():
        return None, ""
    first, second = parts[0].astype(int), parts[1].astype(int)
    if (first > 12).any():
        return True, str(values.iloc[int(np.argmax((first > 12).to_numpy()))])
    if (second > 12).any():
        return False, ""
    return None, "ambiguous"


_EPOCH_UNITS = ("s", "ms", "us", "ns")
_EPOCH_LIMITS = (1e11, 1e14, 1e17, 9.2e18)  # each unit's largest magnitude here (ns: int64's, year 2262)


def _epoch_unit(numeric: pd.Series, column: str) -> str:
    """The one unit (s, ms, us or ns since epoch) of every value, read per value from its magnitude.

    Raises:
        DataError: a value beyond nanoseconds' range, or values of two units in one column (naming the first row
            of the second unit and its value).
    """
    magnitude = numeric.abs().to_numpy(np.float64)
    units = np.searchsorted(np.asarray(_EPOCH_LIMITS), magnitude, side="right")
    if (units >= len(_EPOCH_UNITS)).any():
        row = int(np.argmax(units >= len(_EPOCH_UNITS)))
        raise DataError(f"Column {column!r} has a timestamp beyond the year 2262 at row {row}: {numeric.iloc[row]:.0f}. "
                        "Accepted: seconds, milliseconds, microseconds or nanoseconds since 1970")
    if (units != units[0]).any():
        row = int(np.argmax(units != units[0]))
        raise DataError(f"Column {column!r} mixes timestamp units: row 0 reads as {_UNIT_WORDS[units[0]]} since 1970, "
                        f"row {row} ({numeric.iloc[row]:.0f}) as {_UNIT_WORDS[units[row]]}. Use one unit for every row")
    return _EPOCH_UNITS[int(units[0])]


_UNIT_WORDS = ("seconds", "milliseconds", "microseconds", "nanoseconds")


def _parse_time(values: pd.Series, column: str) -> tuple[pd.DatetimeIndex, bool]:
    """Parses timestamps; integers are read as s/ms/us/ns since epoch by magnitude. Returns (index, was_ms).

    Text dates like ``13/01/2021`` are read day-first when a first field above 12 proves it (or, when every
    date reads both ways, when only the day-first reading is in time order); the index's ``attrs["note"]``
    then says so.
    """
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().mean() > 0.5 and not numeric.notna().all():
        # epoch numbers with a few that are not: name the first of those, not a valid number read as text
        row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
        raise DataError(f"Column {column!r} has a value that is not a timestamp at row {row}: "
                        f"{quoted(values.iloc[row])}")
    if numeric.notna().all():
        magnitude = float(numeric.abs().max())
        if magnitude < 1e8:  # before 1973 in epoch seconds: a row number, not a time
            raise DataError(f"Column {column!r} holds small numbers (max {magnitude:.0f}) that look like a row "
                            "index, not timestamps; add a time column (e.g. 'time' in ms or 'date')")
        unit = _epoch_unit(numeric, column)
        return pd.DatetimeIndex(pd.to_datetime(numeric.astype("int64"), unit=unit, utc=True)), unit == "ms"
    day_first, example = _day_first(values)
    note = ""
    with warnings.catch_warnings():  # pandas' "Could not infer format" is ours to turn into a message
        warnings.simplefilter("ignore", UserWarning)
        if day_first is None and example == "ambiguous":
            month_first = pd.to_datetime(values, utc=True, errors="coerce", dayfirst=False, format="mixed")
            if not pd.DatetimeIndex(month_first).is_monotonic_increasing:
                other = pd.to_datetime(values, utc=True, errors="coerce", dayfirst=True, format="mixed")
                if pd.DatetimeIndex(other).is_monotonic_increasing:
                    day_first, note = True, f"read {column!r} as day-first dates (dd/mm/yyyy): only that reading is in time order"
        elif day_first:
            note = f"read {column!r} as day-first dates (dd/mm/yyyy), as {example!r} shows"
        try:
            parsed = pd.to_datetime(values, utc=True, format="mixed", dayfirst=bool(day_first))
        except (ValueError, TypeError):
            parsed = pd.to_datetime(values, utc=True, errors="coerce", dayfirst=bool(day_first))
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(f"Column {column!r} has a value that is not a timestamp at row {row}: {quoted(values.iloc[row])}")
    index = pd.DatetimeIndex(parsed)
    index.attrs = {"note": note} if note else {}
    return index, False


def normalize_ohlcv(raw: pd.DataFrame, source: str = "frame", covariates: tuple[str, ...] = ()) -> tuple[pd.DataFrame, str]:
    """Detects the layout of a raw table and returns (validated OHLCV frame, layout name).

    ``covariates`` names more numeric columns (any case) kept after the OHLCV ones; their empty cells stay NaN.

    Example:
        >>> frame, layout = normalize_ohlcv(pd.read_csv("BTCUSDT_1h.csv"))  # doctest: +SKIP
        >>> layout  # doctest: +SKIP
        'binance-klines'
    """
    frame = raw.copy()
    if isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.reset_index()
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    time_column = time_column_of({c: pd.api.types.is_datetime64_any_dtype(frame[c]) for c in frame.columns})
    if time_column is None:
        raise DataError(
            f"No timestamp column in {source}: expected one of {', '.join(TIME_COLUMNS[:7])} (any case) "
            f"or a datetime index. Received columns: {list(raw.columns)}"
        )
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise DataError(f"Missing required column(s) {missing} in {source}. Received columns: {quoted(list(raw.columns), limit=400)}")
    absent = [c for c in covariates if c not in frame.columns]
    if absent:
        raise DataError(f"Covariate column {absent[0]!r} is not in {source}. Received columns: {quoted(list(raw.columns), limit=400)}")
    index, was_ms = _parse_time(frame[time_column], time_column)
    notes = [n for n in (raw.attrs.get("note"), getattr(index, "attrs", {}).get("note")) if n]
    layout = BINANCE if was_ms and ("closetime" in frame.columns or "close_time" in frame.columns) else GENERIC

    values = {}
    for column in (*OHLCV, *covariates):
        if pd.api.types.is_bool_dtype(frame[column]):
            raise DataError(f"Column {column!r} holds true/false values in {source}; prices, volume and covariates "
                            "must be numbers")
        numeric = pd.to_numeric(frame[column], errors="coerce")
        bad = numeric.isna() & frame[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            value = frame[column].iloc[row]
            hint = ""
            if isinstance(value, str) and _THOUSANDS.match(value.strip()):
                hint = (" (a ',' thousands separator: save the file with plain numbers such as "
                        f"{value.strip().replace(',', '')})")
            elif isinstance(value, str) and _DECIMAL_COMMA.match(value.strip()):
                hint = f" (a decimal comma: save the file with '.' decimals such as {value.strip().replace(',', '.')})"
            raise DataError(f"Column {column!r} has a non-numeric value at row {row}: {quoted(value)}{hint}")
        values[column] = numeric.to_numpy(dtype="float64")
    # one resolution everywhere, so integer arithmetic on the index is in nanoseconds
    ohlcv = pd.DataFrame(values, index=index.as_unit("ns").rename("time"))
    validate_ohlcv(ohlcv, source)
    ohlcv.attrs["notes"] = notes
    return ohlcv, layout


def _fill_covariates(frame: pd.DataFrame, covariates: tuple[str, ...], source: str) -> tuple[pd.DataFrame, str | None]:
    """Fills each covariate's gaps with its last known value (never a later one) and drops the leading bars before
    every covariate is known; returns the frame and a note when bars were dropped."""
    frame[list(covariates)] = frame[list(covariates)].ffill()
    known = frame[list(covariates)].notna().all(axis=1).to_numpy()
    if not known.any():
        empty = next(c for c in covariates if frame[c].isna().all())
        raise DataError(f"Covariate column {empty!r} has no value in {source}. Received: {len(frame)} rows, all empty")
    first = int(np.argmax(known))
    if first:
        return frame.iloc[first:], f"dropped the first {first} bars, before every covariate has a value"
    return frame, None


PRICE_RANGE = (1e-12, 1e12)
"""Accepted prices: wide enough for any quote currency and token, narrow enough that every feature and metric stays
finite in float64 (prices of 1e300 overflow squared errors; 1e-300 underflow them to 0)."""
MAX_VOLUME = 1e30
MAX_BAR_FACTOR = 1000.0
"""The largest close-to-close move accepted between two bars (the largest real one-bar moves are far below it)."""


def validate_ohlcv(frame: pd.DataFrame, source: str = "data") -> None:
    """Raises DataError for NaN/inf, non-positive prices, unsorted or duplicate timestamps."""
    finite = np.isfinite(frame[list(OHLCV)].to_numpy())
    if not finite.all():
        row, col = map(int, np.argwhere(~finite)[0])
        raise DataError(f"{source} has {int((~finite).sum())} NaN/inf value(s); first in column "
                        f"{OHLCV[col]!r} at {frame.index[row]}")
    prices = frame[["open", "high", "low", "close"]].to_numpy()
    if (prices <= 0).any():
        row = int(np.argwhere(prices <= 0)[0][0])
        raise DataError(f"{source} has a price <= 0 at {frame.index[row]}")
    outside = (prices < PRICE_RANGE[0]) | (prices > PRICE_RANGE[1])
    if outside.any():
        row, col = map(int, np.argwhere(outside)[0])
        raise DataError(f"{source} has {OHLCV[col]}={prices[row, col]:g} at {frame.index[row]}, outside the accepted "
                        f"{PRICE_RANGE[0]:g} .. {PRICE_RANGE[1]:g}. Check the file's price units")
    if (frame["volume"] > MAX_VOLUME).any():
        row = int(np.argmax((frame["volume"] > MAX_VOLUME).to_numpy()))
        raise DataError(f"{source} has a volume of {frame['volume'].iloc[row]:g} at {frame.index[row]}, above the "
                        f"accepted {MAX_VOLUME:g}")
    jumps = np.abs(np.diff(np.log(frame["close"].to_numpy()))) > np.log(MAX_BAR_FACTOR)
    if jumps.any():
        row = int(np.argmax(jumps)) + 1
        before, after = frame["close"].iloc[row - 1], frame["close"].iloc[row]
        raise DataError(f"{source} has a close of {after:g} at {frame.index[row]} after {before:g} one bar earlier: a move "
                        f"of more than {MAX_BAR_FACTOR:g}x in one bar is a bad row or a unit change, not a market")
    high_low = (frame["high"] < frame[["open", "close"]].max(axis=1)) | (frame["low"] > frame[["open", "close"]].min(axis=1)) \
        | (frame["high"] < frame["low"])
    if high_low.any():
        first = frame.index[int(np.argmax(high_low.to_numpy()))]
        raise DataError(f"{source} has {int(high_low.sum())} bar(s) where high < max(open, close) or low > "
                        f"min(open, close); first at {first}. Check the column order (open, high, low, close)")
    if (frame["volume"] < 0).any():
        raise DataError(f"{source} has negative volume at {frame.index[int(np.argmax(frame['volume'] < 0))]}")
    index = frame.index
    duplicated = index.duplicated()
    if duplicated.any():
        raise DataError(f"{source} has {int(duplicated.sum())} duplicate timestamp(s); first: {index[duplicated][0]}. "
                        "Remove duplicate bars")
    if not index.is_monotonic_increasing:
        row = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        raise DataError(f"{source} timestamps are not sorted: {index[row]} comes after {index[row - 1]}. "
                        "Sort the file by time")


def infer_bar(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The most common spacing between bars."""
    if len(index) < 2:
        raise DataError(f"Need at least 2 bars to infer the bar size. Received: {len(index)} row(s)")
    return pd.Timedelta(int(pd.Series(np.diff(index.as_unit("ns").asi8)).mode().iloc[0]), unit="ns")


def bar_label(bar: pd.Timedelta) -> str:
    """``Timedelta('1h')`` -> ``'1h'``; days as ``'1d'``, minutes as ``'15m'``."""
    seconds = int(bar.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def count_gaps(index: pd.DatetimeIndex, bar: pd.Timedelta) -> tuple[int, int]:
    """(number of gaps, number of missing bars) for bars spaced ``bar`` apart."""
    steps = np.diff(index.asi8) // bar.value
    gaps = steps > 1
    return int(gaps.sum()), int((steps[gaps] - 1).sum())


PEEK_ROWS = 1_000
"""Rows of a data file read to tell its bar size (:func:`timeframe_of`)."""


def timeframe_of(data_path: str | Path, default: str = "1h") -> str:
    """The timeframe (:data:`~ml.training_pipeline.common.markets.TIMEFRAMES` name) of the bars a data path holds,
    from the first :data:`PEEK_ROWS` rows of its first file: what the command line trains on when no
    ``--timeframe`` is given, so one-minute data trains on one-minute bars and is resampled only when asked.
    ``default`` where the bars are none of the named timeframes or the file cannot be read (loading it reports why).

    Example:
        >>> from ml.data import bundled_sample_path
        >>> timeframe_of(bundled_sample_path("BTCUSDT"))
        '1h'
    """
    try:
        path = data_files(data_path)[0]
        if path.suffix.lower() in (".parquet", ".pq"):
            times = _parquet_times(path)
            index = None if times is None else times[:PEEK_ROWS]
        else:
            index = normalize_ohlcv(pd.read_csv(_check_text(path), nrows=PEEK_ROWS), str(path))[0].index
        bar = infer_bar(index) if index is not None and len(index) > 1 else None
    except Exception:  # noqa: BLE001  (a peek: reading the file for real says what is wrong with it, in one line)
        return default
    names = {pd.Timedelta(pd.tseries.frequencies.to_offset(rule)): name for name, rule in TIMEFRAMES.items()}
    return names.get(bar, default)


def resample_ohlcv(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Aggregates bars to ``timeframe``; buckets missing any source bar (partial edges, gaps) are dropped.

    Example:
        >>> daily = resample_ohlcv(hourly, "1d")  # doctest: +SKIP
    """
    rule = pd.Timedelta(pd.tseries.frequencies.to_offset(TIMEFRAMES[timeframe]))
    bar = infer_bar(frame.index)
    if bar > rule:
        raise DataError(f"Cannot make {timeframe} bars from coarser {bar_label(bar)} data. Received: timeframe={timeframe!r}")
    if bar == rule:
        return frame
    grouped = frame.resample(rule, label="left", closed="left", origin="epoch")
    # a covariate's value at a bar is its last value inside it (what is known when the bar closes)
    out = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
                       **{c: "last" for c in frame.columns if c not in OHLCV}})
    complete = grouped["close"].count() == int(rule / bar)
    return out[complete]


def filter_dates(frame: pd.DataFrame, days: int | None, start_date: str | None, end_date: str | None) -> pd.DataFrame:
    """Keeps bars within [start_date, end_date] (inclusive days), then the last ``days`` days."""
    if start_date:
        frame = frame[frame.index >= pd.Timestamp(start_date, tz="UTC")]
    if end_date:
        frame = frame[frame.index < pd.Timestamp(end_date, tz="UTC") + pd.Timedelta(days=1)]
    if days and len(frame) and days <= (frame.index[-1] - frame.index[0]).days + 1:  # more days than the data: all of it
        frame = frame[frame.index > frame.index[-1] - pd.Timedelta(days=days)]
    if frame.empty:
        raise DataError(f"No bars left after the date filter (days={days}, start_date={start_date}, end_date={end_date})")
    return frame


def fetch_exchange_ohlcv(symbol: str, timeframe: str, days: int, exchange: str = "binance") -> pd.DataFrame:
    """Downloads klines through ccxt (``pip install 'atb-ml[exchange]'``), failing fast offline.

    Raises:
        DataError: ccxt missing, unknown exchange, or a network error (after at most
            ``EXCHANGE_TIMEOUT_MS`` per request).
    """
    try:
        import ccxt
    except ImportError:
        raise DataError("Exchange download needs ccxt: pip install 'atb-ml[exchange]'") from None
    if exchange not in getattr(ccxt, "exchanges", []):
        raise DataError(f"Unknown exchange {exchange!r} for ccxt. Received: exchange={exchange!r}")
    client = getattr(ccxt, exchange)({"timeout": EXCHANGE_TIMEOUT_MS, "enableRateLimit": True})
    since = int((pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=days)).timestamp() * 1000)
    rows: list[list] = []
    try:
        while True:
            batch = client.fetch_ohlcv(symbol, timeframe=timeframe, since=since, limit=1000)
            if not batch:
                break
            rows.extend(batch)
            if len(batch) < 1000:
                break
            since = batch[-1][0] + 1
    except Exception as error:  # ccxt raises its own hierarchy (NetworkError, ExchangeError)
        raise DataError(f"Download from {exchange} failed ({type(error).__name__}): {str(error).splitlines()[0][:200]}") from None
    if not rows:
        raise DataError(f"{exchange} returned no bars for {symbol} {timeframe}")
    return pd.DataFrame(rows, columns=["time", *OHLCV])


def load_ohlcv(
    symbol: str,
    data_path: str | Path | None = None,
    timeframe: str = "1h",
    days: int | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    exchange: str | None = None,
    covariates: tuple[str, ...] = (),
) -> LoadedData:
    """Loads validated OHLCV bars for ``symbol`` at ``timeframe``.

    Args:
        symbol: e.g. ``"BTCUSDT"``; picks the bundled sample when no file is given.
        data_path: a CSV/Parquet file (Binance kline export or generic OHLCV), or several: a folder of them or a
            glob pattern (``dumps/BTCUSDT-1m-2024-*.csv``), read as one series (:func:`read_ohlcv_files`).
        timeframe: one of :data:`~ml.training_pipeline.common.markets.TIMEFRAMES` (``1m`` .. ``1d``); finer data is
            resampled.
        days: keep the last ``days`` days.
        start_date, end_date: inclusive ISO date bounds.
        exchange: download from this ccxt exchange instead of reading a file.
        covariates: more numeric columns of the file to keep (the user's own inputs, see
            :func:`~.features.build_features`): a gap is filled with the last known value, and leading bars before
            every covariate has a value are dropped (with a note).

    Returns:
        A :class:`LoadedData`.

    Example:
        >>> data = load_ohlcv("BTCUSDT", days=365)
        >>> data.layout, data.timeframe
        ('binance-klines', '1h')
    """
    if timeframe not in TIMEFRAMES:
        raise DataError(f"Unknown timeframe {timeframe!r}. Accepted: {', '.join(TIMEFRAMES)}. Received: timeframe={timeframe!r}")
    if exchange is not None and covariates:
        raise DataError(f"Covariates come from a data file's columns; an exchange download has none. Received: "
                        f"covariates={list(covariates)}, exchange={exchange!r}")
    if exchange is not None:
        raw = fetch_exchange_ohlcv(symbol, timeframe, days or 365, exchange)
        source, layout_hint = f"exchange:{exchange}", "exchange"
    elif data_path is not None:
        raw, source, layout_hint = None, str(data_path), None
    else:
        try:
            path = bundled_sample_path(symbol)
        except ValueError as error:
            raise DataError(str(error)) from None
        raw, source, layout_hint = read_table(path), f"bundled:{path.name}", None
    if raw is None:
        # covariates' gaps are filled from earlier bars, which a date filter while reading would leave out
        frame, layout = read_ohlcv_files(data_path, covariates,
                                         None if covariates else (days, start_date, end_date))
    else:
        frame, layout = normalize_ohlcv(raw, source, covariates)
    notes = list(frame.attrs.get("notes", []))
    if covariates:
        frame, note = _fill_covariates(frame, covariates, source)
        notes += [note] if note else []
    frame = filter_dates(frame, days, start_date, end_date)
    frame.index = frame.index.as_unit("ns")
    bar = infer_bar(frame.index)
    gaps, missing = count_gaps(frame.index, bar)
    if gaps:
        notes.append(f"{gaps} gap(s) in the data ({missing} missing {bar_label(bar)} bars); left as they are")
    resampled = resample_ohlcv(frame, timeframe)
    if len(resampled) != len(frame):
        notes.append(f"resampled {len(frame)} {bar_label(bar)} bars to {len(resampled)} complete {timeframe} bars")
    return LoadedData(resampled, source, layout_hint or layout, timeframe, tuple(notes))
