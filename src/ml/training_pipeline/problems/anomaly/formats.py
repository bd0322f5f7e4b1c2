"""System logs, raw or structured (Loghub's CSV layout), as a table of events with labels.

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

- ``hdfs``: Hadoop file system logs; the session is the block id (``blk_...``), labelled by Loghub's
  ``anomaly_label.csv`` (``BlockId,Label`` with ``Anomaly``/``Normal``) as ``anomalous_sessions``.
- ``generic``: ``<timestamp> <LEVEL> <message>`` lines (ISO-like times, with or without a ``T``).

A raw log file (any name but ``*.csv`` / ``*.csv.gz``) is split into fields by the format's
``line_format`` (LogPAI's ``<Field>`` convention, :mod:`.lines`) and its messages get template ids from
Drain3 (:mod:`.templates`), in the ``EventId`` column the structured CSVs carry. A line format of your own
is a format too: ``--log-format "<Date> <Time> <Level> <Component>: <Content>"`` (:func:`log_format_from_string`).

Another structured log is one :class:`LogFormat` away (see :func:`register_log_format`)::

    register_log_format(LogFormat("myapp", time_columns=("ts",), categorical_columns=("Level", "Service"),
                                  label_column="is_anomaly", normal_labels=("0",), anomaly_pattern="1"))

Example:
    >>> events = load_log_events("../shared/data/BGL_2k.log_structured.csv", "bgl")  # doctest: +SKIP
    >>> events.frame[["time", "level", "label"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.training_pipeline.common.arguments import shortened, unknown_name_error
from ml.training_pipeline.fitting.progress import step_progress
from ml.training_pipeline.problems.anomaly.lines import line_fields, parse_lines, read_lines
from ml.training_pipeline.problems.anomaly.templates import UNSEEN_TEMPLATE, DrainSettings, LogTemplates

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
        line_format: how a raw line of this log splits into the columns above (LogPAI's ``<Field>``
            convention); ``None``: only the structured CSV is read.
        drain: Drain's parameters for the messages of a raw file.
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
    line_format: str | None = None
    drain: DrainSettings = DrainSettings()

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
    if isinstance(name, str) and "<" in name and name not in LOG_FORMATS:
        return log_format_from_string(name)
    if name not in LOG_FORMATS:
        message = str(unknown_name_error("log format", name, LOG_FORMATS))
        raise ValueError(message.replace(". Received:", ", or a line format of your raw log such as "
                                                         "'<Date> <Time> <Level> <Content>'. Received:", 1))
    return LOG_FORMATS[name]


BGL = register_log_format(LogFormat(
    "bgl", time_columns=("Time",), time_format="%Y-%m-%d-%H.%M.%S.%f",
    categorical_columns=("Component", "EventId", "Type"),
    derived_fields={"rack": _part("Node", r"^(R\d+)"), "midplane": _part("Node", r"^(R\d+-M\d+)")},
    label_column="Label", normal_labels=("-",), anomaly_pattern=r"[A-Z][A-Z_]*",
    # LogPAI's BGL settings (Zhu et al. 2019): the core number masked, similarity 0.5, depth 4
    line_format="<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    drain=DrainSettings(similarity=0.5, depth=4, masks=(r"core\.\d+",))))

OPENSTACK = register_log_format(LogFormat(
    "openstack", time_columns=("Date", "Time"), time_format="%Y-%m-%d %H:%M:%S.%f",
    categorical_columns=("Component", "EventId"),
    derived_fields={"service": _part("Logrecord", r"^(nova-[a-z]+)"),
                    "status_class": _part("Content", r"status: (\d)\d\d")},
    session_pattern=_INSTANCE.pattern, parse_requests=True,
    line_format=r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    # LogPAI's OpenStack settings plus a UUID mask: without it the instance and request ids' digits made 299
    # templates of the bundled sample for Loghub's 43 (with it: 35), at 1/15 of the speed
    drain=DrainSettings(similarity=0.5, depth=5, masks=(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}",
                                                         r"((\d+\.){3}\d+,?)+", r"/.+?\s", r"\d+(\.\d+)?"))))

HDFS = register_log_format(LogFormat(
    "hdfs", time_columns=("Date", "Time"), time_format="%y%m%d %H%M%S", categorical_columns=("Component", "EventId"),
    session_pattern=r"(blk_-?\d+)", line_format="<Date> <Time> <Pid> <Level> <Component>: <Content>",
    drain=DrainSettings(similarity=0.5, depth=4, masks=(r"blk_-?\d+", r"(\d+\.){3}\d+(:\d+)?"))))

GENERIC = register_log_format(LogFormat(
    "generic", time_columns=("Timestamp",), categorical_columns=("EventId",),
    line_format=r"<Timestamp:\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?> <Level:[A-Za-z]+> <Content>",
    drain=DrainSettings(similarity=0.4, depth=4, masks=(r"(\d+\.){3}\d+(:\d+)?", r"0x[0-9a-fA-F]+"))))

TIME_FIELDS = ("Timestamp", "Datetime", "Date", "Time")
"""Fields of a user's line format read as the time: ``Timestamp`` or ``Datetime`` alone, else ``Date`` and ``Time``."""


def log_format_from_string(line_format: str) -> LogFormat:
    """A format for a user's raw log from its line format alone, by the field names it uses.

    ``Timestamp`` (or ``Datetime``, or ``Date`` and ``Time``) is the time; ``Level`` the level; ``Content`` the
    message (required); ``Label`` a label column (``-``, ``0`` or ``normal`` for a normal line); ``Session`` a
    session id; ``Component`` a categorical field, and the template id ``EventId`` always one.

    Example:
        >>> fmt = log_format_from_string("<Date> <Time> <Level> <Component>: <Content>")
        >>> fmt.time_columns, fmt.level_column, fmt.categorical_columns
        (('Date', 'Time'), 'Level', ('Component', 'EventId'))
    """
    fields = line_fields(line_format)
    if "Content" not in fields:
        raise ValueError(f"A line format names the message <Content>. Received: {line_format!r}")
    single = [f for f in ("Timestamp", "Datetime") if f in fields]
    time_columns = tuple(single[:1]) or tuple(f for f in ("Date", "Time") if f in fields)
    if not time_columns:
        raise ValueError(f"A line format names the time as <Timestamp>, <Datetime>, or <Date> and <Time>. "
                         f"Received: {line_format!r}")
    return LogFormat(line_format, time_columns=time_columns, level_column="Level" if "Level" in fields else None,
                     categorical_columns=(*(("Component",) if "Component" in fields else ()), "EventId"),
                     label_column="Label" if "Label" in fields else None, normal_labels=("-", "0", "normal", "Normal"),
                     session_column="Session" if "Session" in fields else None, line_format=line_format,
                     drain=GENERIC.drain)


@dataclass(frozen=True)
class LogEvents:
    """A log file as events sorted by time.

    Attributes:
        frame: one row per line with :data:`EVENT_COLUMNS` plus one column per categorical field;
            ``label`` is 0/1, or NaN for an unlabelled file.
        log_format: the format it was read with.
        source: the file it came from.
        templates: the Drain3 templates of a raw file's messages (``None`` for a structured CSV).
        lines: for a raw file, the lines read, events, continuation lines and dropped lines.
    """

    frame: pd.DataFrame
    log_format: LogFormat
    source: str
    templates: LogTemplates | None = None
    lines: dict[str, int] | None = None

    @property
    def labelled(self) -> bool:
        return bool(self.frame["label"].notna().all())

    def describe(self) -> dict[str, Any]:
        times = self.frame["time"]
        raw = {} if self.lines is None else {"raw_lines": self.lines, "templates": len(self.templates)}
        return {"source": self.source, "layout": f"{self.log_format.name}-log", "rows": int(len(self.frame)),
                "start": times.iloc[0].isoformat(), "end": times.iloc[-1].isoformat(),
                "anomalous_lines": None if not self.labelled else int(self.frame["label"].sum()), **raw}


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
    if fmt.time_format:
        times = pd.to_datetime(text, format=fmt.time_format, errors="coerce")
    else:  # each line's own layout; "...Z" and "+02:00" times in UTC, and naive ones as they are, as every time here
        times = pd.to_datetime(text, format="mixed", utc=True, errors="coerce").dt.tz_localize(None)
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


def is_raw_log(path: str | Path) -> bool:
    """Whether a file is read as raw lines (any name but ``*.csv`` / ``*.csv.gz``)."""
    return not str(path).lower().endswith((".csv", ".csv.gz"))


def read_session_labels(path: str | Path) -> list[str]:
    """Anomalous session ids from a file: one id per line, or a CSV of ids and labels with a header (Loghub's
    HDFS ``anomaly_label.csv``: ``BlockId,Label`` with ``Anomaly`` / ``Normal``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Session label file not found: {str(path)!r}. Accepted: one anomalous session id "
                                "per line, or a CSV of session id and label (Anomaly/Normal)")
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if not lines or "," not in lines[0]:
        return lines
    anomalous, bad = [], []
    for line in lines[1:]:  # the first line is the header
        session, _, label = (part.strip() for part in line.partition(","))
        if label.lower() in ("anomaly", "anomalous", "abnormal", "1", "true"):
            anomalous.append(session)
        elif label.lower() not in ("normal", "0", "false"):
            bad.append(label)
    if bad:
        raise ValueError(f"{path.name}: a session label must be Anomaly or Normal (or 1/0, true/false). "
                         f"Received: {shortened(bad[0])!r}")
    return anomalous


def starts_event(fmt: LogFormat) -> Callable[[dict[str, str]], bool]:
    """Whether a matched raw line starts an event: its time reads (else it is a wrapped line)."""
    from datetime import datetime

    import pandas as pd

    def starts(fields: dict[str, str]) -> bool:
        text = " ".join(fields[c] for c in fmt.time_columns)
        try:
            if fmt.time_format:
                datetime.strptime(text, fmt.time_format)
            else:
                pd.Timestamp(text.replace(",", "."))
        except ValueError:
            return False
        return True

    return starts


def read_raw_log(path: str | Path, log_format: str | LogFormat, templates: LogTemplates | None = None,
                 log: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, LogTemplates, dict[str, int]]:
    """A raw log file as the structured table of its format, with Drain3 template ids.

    Args:
        path: a text log (``.gz`` read as gzip).
        log_format: a format with a ``line_format``.
        templates: the templates of a stored model: messages are matched to them, and a message none of them
            covers gets the unseen id. ``None``: templates are mined from this file.
        log: called with a line every few seconds while a big file is read and its templates mined (with the
            lines done, of how many, and the time left).

    Returns:
        The table (the line format's fields plus ``EventId`` and ``EventTemplate``), the templates, and the
        line counts of :func:`~.lines.parse_lines`.
    """
    fmt = get_log_format(log_format)
    if fmt.line_format is None:
        raise ValueError(f"The {fmt.name!r} log format reads structured CSVs only. Accepted: a *.csv file, or a "
                         f"format with a line layout ({', '.join(n for n, f in LOG_FORMATS.items() if f.line_format)}"
                         f", or your own such as '<Date> <Time> <Level> <Content>')")
    name = Path(path).name
    reading = None
    if log is not None:  # a line count first (a fast pass) so that the lines say how many are left
        total = sum(1 for _ in read_lines(path))
        step = step_progress(log, f"reading {name}: lines")
        reading = lambda done: step(done, total)  # noqa: E731
    frame, counts = parse_lines(read_lines(path), fmt.line_format, source=name, starts=starts_event(fmt),
                                progress=reading)
    frame, templates = with_templates(frame, fmt, templates, log=log)
    return frame, templates, counts


TEMPLATE_CHUNK = 20_000
"""Messages per call to Drain3 between two progress reports."""


def with_templates(frame: pd.DataFrame, log_format: LogFormat, templates: LogTemplates | None = None,
                   log: Callable[[str], None] | None = None, ids: list[str] | None = None
                   ) -> tuple[pd.DataFrame, LogTemplates]:
    """Raw lines' fields (:func:`~.lines.parse_lines`) with their template ids (``EventId``, ``EventTemplate``):
    mined from these lines when ``templates`` is ``None``, else matched to ``templates`` without learning (or
    ``ids``, already matched to them)."""
    fmt = log_format
    contents = frame["Content"].tolist()

    def in_chunks(work: Callable[[list[str]], list[str]], what: str) -> list[str]:
        progress = None if log is None else step_progress(log, what)
        ids: list[str] = []
        for start in range(0, len(contents), TEMPLATE_CHUNK):
            ids += work(contents[start:start + TEMPLATE_CHUNK])
            if progress is not None:
                progress(len(ids), len(contents))
        return ids

    frame = frame.copy()
    if fmt.time_format is None:  # Python's logging writes 10:00:01,123
        for column in fmt.time_columns:
            frame[column] = frame[column].str.replace(",", ".", regex=False)
    if templates is None:
        templates = LogTemplates(fmt.drain)
        mined = in_chunks(templates.mine, "Drain3: mining templates, messages")
        # then every line by the final templates, as serving will see it: a template that formed after a line
        # was mined may cover it better than the one it started
        matched = in_chunks(templates.match, "Drain3: matching messages to the final templates")
        ids = [seen if seen != UNSEEN_TEMPLATE else first for seen, first in zip(matched, mined, strict=True)]
    elif ids is None:
        ids = in_chunks(templates.match, "Drain3: matching messages to the stored templates")
    frame["EventId"] = ids
    frame["EventTemplate"] = templates.templates(ids)
    return frame, templates


def load_log_events(path: str | Path, log_format: str | LogFormat, *,
                    anomalous_sessions: Iterable[str] | str | Path | None = None,
                    templates: LogTemplates | None = None, log: Callable[[str], None] | None = None) -> LogEvents:
    """Reads a structured log CSV (Loghub's ``*.log_structured.csv``) or a raw log file as :class:`LogEvents`.

    Args:
        path: the CSV file, or a raw log (any other name; see :func:`read_raw_log`).
        log_format: ``"bgl"``, ``"openstack"``, ``"hdfs"``, ``"generic"``, another registered name, a line format
            string, or a :class:`LogFormat`.
        anomalous_sessions: ids of anomalous sessions, or a file of them (:func:`read_session_labels`: one id per
            line as Loghub's OpenStack ``anomaly_labels.txt``, or HDFS's ``anomaly_label.csv``).
        templates: a stored model's templates, for a raw file (``None``: mined from the file).
        log: progress lines while a big raw file is read (:func:`read_raw_log`).

    Example:
        >>> load_log_events("BGL_2k.log_structured.csv", "bgl").frame["label"].sum()  # doctest: +SKIP
        143.0
    """
    import pandas as pd

    fmt = get_log_format(log_format)  # an unknown format fails before the file is read
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Log file not found: {str(path)!r}. Accepted: a structured log CSV or a raw log")
    if isinstance(anomalous_sessions, (str, Path)):
        anomalous_sessions = read_session_labels(anomalous_sessions)
    if is_raw_log(path):
        frame, templates, counts = read_raw_log(path, fmt, templates, log=log)
        events = read_log_events(frame, fmt, source=str(path), anomalous_sessions=anomalous_sessions)
        return dataclasses.replace(events, templates=templates, lines=counts)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path.name} is not a readable CSV log: {str(error).splitlines()[0]}") from None
    return read_log_events(frame, fmt, source=str(path), anomalous_sessions=anomalous_sessions)
