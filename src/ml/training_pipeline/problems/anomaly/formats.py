"""Structured system logs (Loghub's CSV layout) as a table of events with labels.

A :class:`LogFormat` says how one structured log layout maps to the library's event table:
which columns hold the time, the level, the message and the categorical fields, which column
(if any) holds the label, and what a session is. Two formats are registered, for the Loghub
files in ``shared/data``:

- ``bgl``: BlueGene/L RAS logs. ``Label`` is ``-`` for a normal line and an alert category
  (``KERNDTLB``, ``APPSEV``...) otherwise; the time comes from ``Time``
  (``2005-06-03-15.42.50.675872``); the node id gives a rack and a midplane.
- ``openstack``: nova logs. The request status, response length and latency are parsed from
  API lines (``status: 200 len: 1893 time: 0.2477829``), the HTTP method from the request, the
  service from the log file name; the session is the ``[instance: ...]`` id. The files carry no
  label column: Loghub labels OpenStack by anomalous instance id, so pass those ids as
  ``anomalous_sessions``.

Another structured log is one :class:`LogFormat` away (see :func:`register_log_format`)::

    register_log_format(LogFormat("myapp", time_columns=("ts",), categorical_columns=("Level", "Service"),
                                  label_column="is_anomaly", normal_labels=("0",), anomaly_pattern="1"))

Example:
    >>> events = load_log_events("../shared/data/BGL_2k.log_structured.csv", "bgl")  # doctest: +SKIP
    >>> events.frame[["time", "level", "label"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.training_pipeline.common.arguments import unknown_name_error

if TYPE_CHECKING:  # pandas is imported where a log is read: `atb --help` lists the formats without it
    import pandas as pd

_REQUEST = re.compile(r'"(GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) [^"]*"\s*status:\s*(\d+)\s+len:\s*(\d+)\s+time:\s*([\d.]+)')
_INSTANCE = re.compile(r"\[instance: ([0-9a-fA-F-]{8,})\]")

EVENT_COLUMNS: tuple[str, ...] = ("time", "level", "content", "http_method", "http_status", "response_length",
                                  "latency", "session", "label")
"""Columns every event table has (besides its categorical fields); absent values are NaN or ''."""


def _http(content: pd.Series) -> pd.DataFrame:
    import pandas as pd

    found = content.str.extract(_REQUEST)
    return pd.DataFrame({"http_method": found[0].fillna(""),
                         "http_status": pd.to_numeric(found[1], errors="coerce"),
                         "response_length": pd.to_numeric(found[2], errors="coerce"),
                         "latency": pd.to_numeric(found[3], errors="coerce")}, index=content.index)


def _part(column: str, pattern: str) -> Callable[[pd.DataFrame], pd.Series]:
    """A categorical field read from the first match of ``pattern`` in ``column`` ('' when none)."""
    compiled = re.compile(pattern)

    def read(frame: pd.DataFrame) -> pd.Series:
        return frame[column].astype(str).str.extract(compiled, expand=False).fillna("")

    read.__name__ = f"{column}~{pattern}"
    return read


@dataclass(frozen=True)
class LogFormat:
    """How one structured log layout becomes the event table.

    Attributes:
        name: the format's name (``--log-format``).
        time_columns: columns joined with a space and parsed as the event time.
        time_format: ``strptime`` format of that text (``None``: pandas infers it).
        content_column: the free-text message.
        level_column: the severity column, or ``None``.
        categorical_columns: columns used as categorical fields as they are.
        derived_fields: ``{field: function(frame) -> Series of str}`` for fields computed from columns.
        label_column: the label column, or ``None`` for an unlabelled layout.
        normal_labels: values of ``label_column`` that mean a normal line.
        anomaly_pattern: a regular expression every anomalous label value matches in full; any other
            value is refused (a typo, or a column that is not a label).
        session_pattern: a regular expression whose first group, searched in the content, is the
            event's session id (e.g. an instance id), or ``None``.
        session_column: a column holding the session id (wins over ``session_pattern``).
        parse_requests: parse HTTP method, status, length and latency from the content.
    """

    name: str
    time_columns: tuple[str, ...]
    time_format: str | None = None
    content_column: str = "Content"
    level_column: str | None = "Level"
    categorical_columns: tuple[str, ...] = ()
    derived_fields: dict[str, Callable[[pd.DataFrame], pd.Series]] = field(default_factory=dict)
    label_column: str | None = None
    normal_labels: tuple[str, ...] = ("-",)
    anomaly_pattern: str = r".+"
    session_pattern: str | None = None
    session_column: str | None = None
    parse_requests: bool = False

    @property
    def required_columns(self) -> tuple[str, ...]:
        named = (*self.time_columns, self.content_column, self.level_column, *self.categorical_columns,
                 self.label_column, self.session_column)
        return tuple(dict.fromkeys(c for c in named if c))

    @property
    def fields(self) -> tuple[str, ...]:
        """The categorical fields, in the order the model's ``categorical`` input holds them."""
        return (*(("level",) if self.level_column else ()), *(c.lower() for c in self.categorical_columns),
                *self.derived_fields,
                *(("http_method",) if self.parse_requests else ()))


LOG_FORMATS: dict[str, LogFormat] = {}


def register_log_format(log_format: LogFormat) -> LogFormat:
    """Adds a format to :data:`LOG_FORMATS` (by its name) and returns it."""
    LOG_FORMATS[log_format.name] = log_format
    return log_format


def get_log_format(name: str | LogFormat) -> LogFormat:
    """A registered format by name (a :class:`LogFormat` passes through)."""
    if isinstance(name, LogFormat):
        return name
    if name not in LOG_FORMATS:
        raise unknown_name_error("log format", name, LOG_FORMATS)
    return LOG_FORMATS[name]


BGL = register_log_format(LogFormat(
    "bgl", time_columns=("Time",), time_format="%Y-%m-%d-%H.%M.%S.%f",
    categorical_columns=("Component", "EventId", "Type"),
    derived_fields={"rack": _part("Node", r"^(R\d+)"), "midplane": _part("Node", r"^(R\d+-M\d+)")},
    label_column="Label", normal_labels=("-",), anomaly_pattern=r"[A-Z][A-Z_]*"))

OPENSTACK = register_log_format(LogFormat(
    "openstack", time_columns=("Date", "Time"), time_format="%Y-%m-%d %H:%M:%S.%f",
    categorical_columns=("Component", "EventId"),
    derived_fields={"service": _part("Logrecord", r"^(nova-[a-z]+)"),
                    "status_class": _part("Content", r"status: (\d)\d\d")},
    session_pattern=_INSTANCE.pattern, parse_requests=True))


@dataclass(frozen=True)
class LogEvents:
    """A log file as events sorted by time.

    Attributes:
        frame: one row per line with :data:`EVENT_COLUMNS` plus one column per categorical field;
            ``label`` is 0/1, or NaN for an unlabelled file.
        log_format: the format it was read with.
        source: the file it came from.
    """

    frame: pd.DataFrame
    log_format: LogFormat
    source: str

    @property
    def labelled(self) -> bool:
        return bool(self.frame["label"].notna().all())

    def describe(self) -> dict[str, Any]:
        times = self.frame["time"]
        return {"source": self.source, "layout": f"{self.log_format.name}-log", "rows": int(len(self.frame)),
                "start": times.iloc[0].isoformat(), "end": times.iloc[-1].isoformat(),
                "anomalous_lines": None if not self.labelled else int(self.frame["label"].sum())}


def _labels(frame: pd.DataFrame, log_format: LogFormat) -> pd.Series:
    raw = frame[log_format.label_column]
    if raw.isna().any():
        raise ValueError(f"Label column {log_format.label_column!r} has {int(raw.isna().sum())} empty values, first at "
                         f"line {int(np.flatnonzero(raw.isna().to_numpy())[0]) + 1}. Accepted: "
                         f"{', '.join(map(repr, log_format.normal_labels))} for normal, values matching "
                         f"{log_format.anomaly_pattern!r} for anomalies")
    text = raw.astype(str).str.strip()
    normal = text.isin(log_format.normal_labels)
    anomalous = text.str.fullmatch(log_format.anomaly_pattern) & ~normal
    bad = text[~normal & ~anomalous]
    if len(bad):
        raise ValueError(f"Label column {log_format.label_column!r} holds an unexpected value {bad.iloc[0]!r} "
                         f"(line {int(bad.index[0]) + 1}). Accepted: {', '.join(map(repr, log_format.normal_labels))} "
                         f"for normal, values matching {log_format.anomaly_pattern!r} for anomalies")
    return anomalous.astype(np.float64)


def read_log_events(frame: pd.DataFrame, log_format: str | LogFormat, *, source: str = "frame",
                    anomalous_sessions: Iterable[str] | None = None) -> LogEvents:
    """A structured log table (one row per line) as :class:`LogEvents`.

    Args:
        frame: the parsed log lines, e.g. ``pd.read_csv("BGL_2k.log_structured.csv")``.
        log_format: a registered format name or a :class:`LogFormat`.
        source: where the frame came from (for messages and metadata).
        anomalous_sessions: session ids (e.g. OpenStack instance ids) whose lines are anomalous;
            labels a format without a label column.

    Raises:
        ValueError: missing columns, unparsable times, unexpected label values.
    """
    import pandas as pd

    fmt = get_log_format(log_format)
    missing = [c for c in fmt.required_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} lacks the column {missing[0]!r} of the {fmt.name!r} log format. "
                         f"Accepted: a structured log with columns {', '.join(fmt.required_columns)}. "
                         f"Received columns: {', '.join(map(str, frame.columns))}")
    if not len(frame):
        raise ValueError(f"{source} has no log lines. Received: 0 rows")
    frame = frame.reset_index(drop=True)
    text = frame[list(fmt.time_columns)].astype(str).agg(" ".join, axis=1)
    times = pd.to_datetime(text, format=fmt.time_format, errors="coerce")
    if times.isna().any():
        first = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ValueError(f"{source}: cannot read the time {text.iloc[first]!r} at line {first + 1}. Accepted: "
                         f"{'+'.join(fmt.time_columns)} in the format {fmt.time_format or 'pandas infers'}")
    content = frame[fmt.content_column].fillna("").astype(str)
    events = pd.DataFrame({"time": times, "content": content,
                           "level": frame[fmt.level_column].fillna("").astype(str).str.upper()
                           if fmt.level_column else ""})
    for column in fmt.categorical_columns:
        events[column.lower()] = frame[column].fillna("").astype(str)
    for name, derive in fmt.derived_fields.items():
        events[name] = derive(frame).astype(str)
    requests = _http(content) if fmt.parse_requests else pd.DataFrame(
        {"http_method": "", "http_status": np.nan, "response_length": np.nan, "latency": np.nan}, index=frame.index)
    events = pd.concat([events, requests], axis=1)
    if fmt.session_column:
        events["session"] = frame[fmt.session_column].fillna("").astype(str)
    elif fmt.session_pattern:
        events["session"] = content.str.extract(re.compile(fmt.session_pattern), expand=False).fillna("")
    else:
        events["session"] = ""
    if fmt.label_column:
        events["label"] = _labels(frame, fmt)
    elif anomalous_sessions is not None:
        wanted = {str(s).strip() for s in anomalous_sessions if str(s).strip()}
        events["label"] = events["session"].isin(wanted).astype(np.float64)
    else:
        events["label"] = np.nan
    # stable: lines of the same instant keep their file order
    events = events.sort_values("time", kind="stable").reset_index(drop=True)
    return LogEvents(events, fmt, source)


def load_log_events(path: str | Path, log_format: str | LogFormat, *,
                    anomalous_sessions: Iterable[str] | str | Path | None = None) -> LogEvents:
    """Reads a structured log CSV (Loghub's ``*.log_structured.csv``) as :class:`LogEvents`.

    Args:
        path: the CSV file.
        log_format: ``"bgl"``, ``"openstack"``, another registered name, or a :class:`LogFormat`.
        anomalous_sessions: ids of anomalous sessions, or a text file with one id per line
            (Loghub's OpenStack ``anomaly_labels.txt``).

    Example:
        >>> load_log_events("BGL_2k.log_structured.csv", "bgl").frame["label"].sum()  # doctest: +SKIP
        143.0
    """
    import pandas as pd

    fmt = get_log_format(log_format)  # an unknown format fails before the file is read
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Log file not found: {str(path)!r}. Accepted: a structured log CSV")
    if isinstance(anomalous_sessions, (str, Path)):
        ids_path = Path(anomalous_sessions)
        if not ids_path.is_file():
            raise FileNotFoundError(f"Session label file not found: {str(ids_path)!r}. Accepted: one session id per line")
        anomalous_sessions = [line.strip() for line in ids_path.read_text().splitlines()]
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path.name} is not a readable CSV log: {str(error).splitlines()[0]}") from None
    return read_log_events(frame, fmt, source=str(path), anomalous_sessions=anomalous_sessions)
