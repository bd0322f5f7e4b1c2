"""Log events grouped into windows and encoded as the multimodal model's named inputs.

A window is a set of events: a time window (fixed, or sliding with a step), a run of ``N``
consecutive events, or one session (an instance id). A window is anomalous when any of its
events is labelled.

:class:`LogEncoder` is fitted on the training windows only (vocabularies with an unknown
bucket, numeric scaling, spike thresholds) and then encodes any window, including windows of a
new log file at predict time, into:

- ``numeric`` ``(max_events, 13)`` float: :data:`NUMERIC_FEATURES`, standardised;
- ``flags`` ``(max_events, 9)`` float 0/1: :data:`FLAG_FEATURES`;
- ``categorical`` ``(max_events, fields)`` int: one id per categorical field, in one id space
  (field ``i`` owns ids ``offsets[i] .. offsets[i] + size_i - 1``; its first id is "unknown");
- ``padding_mask`` ``(max_events,)`` bool: True for a real event;
- ``aggregates`` ``(11,)`` float: :data:`AGGREGATE_FEATURES` over *all* the window's events,
  standardised.

It also gives each window's event-count vector (counts per event id), the input of the simple
baselines.

Example:
    >>> events = load_log_events("BGL_2k.log_structured.csv", "bgl")  # doctest: +SKIP
    >>> windows = Windowing("events", 20, step=10).windows(events.frame)  # doctest: +SKIP
    >>> encoder = LogEncoder.fit(events, [w for w in windows[:100]])  # doctest: +SKIP
    >>> encoder.encode(events, windows)["numeric"].shape  # doctest: +SKIP
    (199, 128, 13)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.training_pipeline.common.arguments import unknown_name_error
from ml.training_pipeline.problems.anomaly.formats import LogEvents

NUMERIC_FEATURES: tuple[str, ...] = (
    "log_gap", "offset", "position", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "log_content_length",
    "log_numbers", "http_status", "log_response_length", "latency", "log_latency")
"""Per-event numbers: log1p seconds since the window's previous event, time since the window's start as a share
of its span, position among the kept events, time of day and week (sin/cos), log1p message length, log1p count
of numbers in the message, HTTP status / 100, log1p response length, latency (s) and log1p latency (ms); the
request fields are 0 on lines that are not requests."""

FLAG_FEATURES: tuple[str, ...] = (
    "error_level", "warning_level", "failure_words", "http_client_error", "http_server_error", "latency_spike",
    "gap_spike", "unseen_event", "severe_level")
"""Per-event 0/1 flags: level ERROR/FATAL/SEVERE/CRITICAL, level WARN(ING), a failure word in the message,
HTTP 4xx, HTTP 5xx, latency above the training 95th percentile, gap above the training 99th percentile, an
event id never seen in training, level FATAL/CRITICAL/EMERG/ALERT (what an operator's first rule flags)."""

AGGREGATE_FEATURES: tuple[str, ...] = (
    "log_events", "unique_event_share", "error_share", "warning_share", "failure_share", "log_duration",
    "log_mean_gap", "mean_log_latency", "max_log_latency", "severe_share", "unseen_event_share")
"""Per-window numbers over all its events (also those beyond ``max_events``). The last two give the model the
operator's rules (a severe line; a template never seen in training) as one number each."""

FLAGS_BEFORE_SEVERE = 8
"""Flags of an encoder stored before ``severe_level`` (it encodes the first 8; its aggregates, the first 9)."""

WINDOW_KINDS: tuple[str, ...] = ("time", "events", "session")
ERROR_LEVELS = ("ERROR", "FATAL", "SEVERE", "CRITICAL", "FAILURE")
_WARNING_LEVELS = ("WARN", "WARNING")
SEVERE_LEVELS = ("FATAL", "CRITICAL", "EMERG", "ALERT")
"""Levels of the ``severe_level`` flag and of the "severe line" rule baseline."""
_FAILURE = re.compile(r"(?i)\b(?:error|fail\w*|exception|fatal|timeout|timed out|denied|refused|interrupt\w*|panic|abort\w*)\b")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
UNKNOWN = "<unknown>"


@dataclass(frozen=True)
class Windowing:
    """How events are grouped into windows.

    Attributes:
        by: ``"time"`` (``length`` and ``step`` are durations such as ``"5min"``), ``"events"`` (counts)
            or ``"session"`` (one window per session id; ``length`` and ``step`` unused).
        length: window length (default ``"5min"`` for time, 20 events for events).
        step: distance between window starts; ``None`` = ``length`` (fixed windows); smaller = sliding.
        max_events: events the sequence inputs hold per window (the first ones); the aggregates and counts
            see them all.

    Example:
        >>> Windowing("time", "5min", step="1min").describe()
        'sliding 5min windows every 1min (at most 128 events each)'
    """

    by: str = "time"
    length: str | int | None = None
    step: str | int | None = None
    max_events: int = 128

    def __post_init__(self):
        if self.by not in WINDOW_KINDS:
            raise unknown_name_error("window kind", self.by, WINDOW_KINDS)
        if not isinstance(self.max_events, int) or isinstance(self.max_events, bool) or not 1 <= self.max_events <= 4096:
            raise ValueError(f"max_events must be an int in [1, 4096]. Received: max_events={self.max_events!r}")
        if self.by == "session":
            return
        length = self.length if self.length is not None else ("5min" if self.by == "time" else 20)
        object.__setattr__(self, "length", length)
        object.__setattr__(self, "step", length if self.step is None else self.step)
        for name in ("length", "step"):
            self.amount(name)

    def amount(self, name: str) -> float:
        """Seconds (time windows) or events (event windows) of ``length`` or ``step``; > 0."""
        value = getattr(self, name)
        if self.by == "time":
            try:
                seconds = pd.Timedelta(value).total_seconds()
            except (ValueError, TypeError):
                seconds = float("nan")
            if not seconds > 0:
                raise ValueError(f"window {name} must be a positive duration such as '5min' or '30s'. "
                                 f"Received: {name}={value!r}")
            return seconds
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"window {name} must be a count of events >= 1 for by='events'. Received: {name}={value!r}")
        return float(value)

    def describe(self) -> str:
        if self.by == "session":
            return f"one window per session (at most {self.max_events} events each)"
        unit = "" if self.by == "time" else " events"
        kind = "fixed" if self.amount("step") == self.amount("length") else "sliding"
        every = "" if kind == "fixed" else f" every {self.step}{unit}"
        return f"{kind} {self.length}{unit} windows{every} (at most {self.max_events} events each)"

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "length": self.length, "step": self.step, "max_events": self.max_events}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Windowing:
        return cls(data["by"], data.get("length"), data.get("step"), data.get("max_events", 128))

    def windows(self, frame: pd.DataFrame) -> list[np.ndarray]:
        """Event row numbers of each non-empty window, windows ordered by their first event.

        Sliding time windows that hold exactly the same events as the previous one are kept once.
        """
        if self.by == "session":
            sessions = frame["session"].to_numpy()
            order: dict[str, list[int]] = {}
            for row, session in enumerate(sessions):
                if session:
                    order.setdefault(session, []).append(row)
            return [np.asarray(rows) for rows in order.values()]
        if self.by == "events":
            length, step, n = int(self.amount("length")), int(self.amount("step")), len(frame)
            return [np.arange(start, min(start + length, n)) for start in range(0, max(n - length, 0) + 1, step)]
        seconds = (frame["time"] - frame["time"].iloc[0]).dt.total_seconds().to_numpy()
        length, step = self.amount("length"), self.amount("step")
        starts = np.arange(0.0, seconds[-1] + step, step)
        # the first start at or before each event keeps sparse logs from listing millions of empty windows
        starts = np.unique(np.concatenate([starts[np.searchsorted(starts, seconds, side="right") - 1]
                                           - k * step for k in range(int(np.ceil(length / step)))]))
        starts = starts[starts >= 0]
        low = np.searchsorted(seconds, starts, side="left")
        high = np.searchsorted(seconds, starts + length, side="left")
        ranges = sorted({(int(a), int(b)) for a, b in zip(low, high, strict=True) if b > a})
        return [np.arange(a, b) for a, b in ranges]


DEFAULT_VALIDATION_BLOCKS = 1
"""Validation blocks by default (benchmarks/log_anomaly.py compares 1 and 4 over seeds)."""


def chronological_parts(windows: Sequence[np.ndarray], times: np.ndarray, fractions: tuple[float, float] = (0.15, 0.15),
                        validation_blocks: int = 1) -> tuple[dict[str, np.ndarray], int]:
    """Window numbers of the train, validation and test parts, in time order, with no event in two parts.

    The windows are cut by count at the given validation and test fractions: the test part is the last
    windows; the validation part is the windows just before it (``validation_blocks=1``), or that many equal
    blocks spread over the time before the test part, each at the end of its stretch (a rare class that comes
    in bursts then reaches validation from several periods, not from one). A window that would hold events
    from two parts (sliding windows across a cut) is dropped ("purged"): the earlier side of each cut loses it.

    Returns:
        ``({"train": ..., "validation": ..., "test": ...}, purged windows)``.

    Example:
        >>> windows = [np.array([i]) for i in range(20)]
        >>> parts, purged = chronological_parts(windows, np.arange(20), (0.2, 0.2), validation_blocks=2)
        >>> parts["validation"].tolist(), parts["test"].tolist()
        ([6, 7, 14, 15], [16, 17, 18, 19])
    """
    if not isinstance(validation_blocks, int) or isinstance(validation_blocks, bool) or validation_blocks < 1:
        raise ValueError(f"validation_blocks must be an int >= 1. Received: validation_blocks={validation_blocks!r}")
    first = np.array([times[w].min() for w in windows])
    last = np.array([times[w].max() for w in windows])
    order = np.argsort(first, kind="stable")
    n = len(order)
    n_test, n_val = int(round(n * fractions[1])), int(round(n * fractions[0]))
    before_test = n - n_test
    part = np.zeros(n, np.int8)  # by position in time order: 0 train, 1 validation, 2 test
    part[before_test:] = 2
    blocks = max(1, min(validation_blocks, n_val))
    for block in range(blocks):
        stop = int(round(before_test * (block + 1) / blocks))
        size = int(round(n_val * (block + 1) / blocks)) - int(round(n_val * block / blocks))
        part[max(0, stop - size):stop] = 1
    # each run of one part ends before the next run starts: a window reaching into the next run is purged
    keep = np.ones(n, bool)
    changes = np.flatnonzero(np.diff(part)) + 1
    for run_start, next_start in zip(np.concatenate([[0], changes])[:-1], changes, strict=True):
        keep[run_start:next_start] = last[order[run_start:next_start]] < first[order[next_start]]
    parts = {name: order[(part == code) & keep] for code, name in enumerate(("train", "validation", "test"))}
    return parts, n - int(keep.sum())


def distinct_lines(windows: Sequence[np.ndarray], rows: Sequence[int]) -> int:
    """How many distinct log lines the windows numbered ``rows`` hold (overlapping windows share lines).

    Example:
        >>> distinct_lines([np.array([0, 1, 2]), np.array([2, 3, 4])], [0, 1])
        5
    """
    picked = [windows[r] for r in rows]
    return int(len(np.unique(np.concatenate(picked)))) if picked else 0


def _cyclic(values: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    angle = 2 * np.pi * values / period
    return np.sin(angle), np.cos(angle)


def event_table(events: LogEvents) -> dict[str, np.ndarray]:
    """Per-event values that do not depend on the window (vectorised once per file)."""
    frame = events.frame
    time = frame["time"]
    hours = time.dt.hour.to_numpy() + time.dt.minute.to_numpy() / 60.0
    hour_sin, hour_cos = _cyclic(hours, 24.0)
    weekday_sin, weekday_cos = _cyclic(time.dt.weekday.to_numpy().astype(float), 7.0)
    content = frame["content"].astype(str)
    status = frame["http_status"].to_numpy(np.float64)
    latency = frame["latency"].to_numpy(np.float64)
    level = frame["level"].to_numpy()
    return {
        "seconds": (time - time.iloc[0]).dt.total_seconds().to_numpy(),
        "hour_sin": hour_sin, "hour_cos": hour_cos, "weekday_sin": weekday_sin, "weekday_cos": weekday_cos,
        "log_content_length": np.log1p(content.str.len().to_numpy(np.float64)),
        "log_numbers": np.log1p(content.str.count(_NUMBER).to_numpy(np.float64)),
        "http_status": np.nan_to_num(status / 100.0),
        "log_response_length": np.log1p(np.nan_to_num(frame["response_length"].to_numpy(np.float64))),
        "latency": np.nan_to_num(latency),
        "log_latency": np.log1p(np.nan_to_num(latency) * 1000.0),
        "has_latency": np.isfinite(latency),
        "error_level": np.isin(level, ERROR_LEVELS).astype(np.float64),
        "warning_level": np.isin(level, _WARNING_LEVELS).astype(np.float64),
        "severe_level": np.isin(np.char.upper(level.astype(str)), SEVERE_LEVELS).astype(np.float64),
        "failure_words": content.str.contains(_FAILURE).to_numpy().astype(np.float64),
        "http_client_error": ((status >= 400) & (status < 500)).astype(np.float64),
        "http_server_error": (status >= 500).astype(np.float64),
    }


def _gaps(seconds: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.diff(seconds)]) if len(seconds) else seconds


@dataclass(frozen=True)
class LogEncoder:
    """Vocabularies, scalers and thresholds fitted on training windows; encodes any window.

    Attributes:
        fields: the categorical fields, in input order.
        vocabularies: per field, the values seen in training (id = offset + 1 + position; offset + 0 is unknown).
        numeric_mean, numeric_std, aggregate_mean, aggregate_std: training statistics.
        latency_spike, gap_spike: thresholds of the spike flags (training 95th / 99th percentiles).
        event_field: the field whose counts form the baselines' count vector.
        max_events: sequence length of the inputs.
        flag_count: flags it encodes (:data:`FLAG_FEATURES`' first ones; fewer for an encoder stored before a flag
            was added, whose model reads that many).
    """

    fields: tuple[str, ...]
    vocabularies: dict[str, list[str]]
    numeric_mean: list[float]
    numeric_std: list[float]
    aggregate_mean: list[float]
    aggregate_std: list[float]
    latency_spike: float
    gap_spike: float
    event_field: str
    max_events: int
    flag_count: int = len(FLAG_FEATURES)

    @property
    def sizes(self) -> list[int]:
        """Ids per field (its vocabulary plus the unknown id)."""
        return [len(self.vocabularies[f]) + 1 for f in self.fields]

    @property
    def offsets(self) -> list[int]:
        return [int(x) for x in np.cumsum([0, *self.sizes[:-1]])]

    @property
    def vocab_size(self) -> int:
        """Ids of the shared id space of the ``categorical`` input."""
        return int(sum(self.sizes))

    @property
    def count_names(self) -> list[str]:
        """Names of the count vector's columns: ``count:<event id>`` and ``count:<unknown>``."""
        return [f"count:{UNKNOWN}", *(f"count:{v}" for v in self.vocabularies[self.event_field])]

    @classmethod
    def fit(cls, events: LogEvents, windows: Sequence[np.ndarray], max_events: int = 128) -> LogEncoder:
        """Fits on the events of the given (training) windows only."""
        frame, fields = events.frame, events.log_format.fields
        rows = np.unique(np.concatenate(list(windows))) if len(windows) else np.zeros(0, int)
        vocabularies = {f: [v for v, _ in sorted(Counter(frame[f].to_numpy()[rows]).items(),
                                                 key=lambda item: (-item[1], item[0]))] for f in fields}
        table = event_table(events)
        gaps = np.concatenate([_gaps(table["seconds"][w]) for w in windows]) if len(windows) else np.zeros(1)
        latencies = table["latency"][rows][table["has_latency"][rows]]
        encoder = cls(fields, vocabularies, [0.0] * len(NUMERIC_FEATURES), [1.0] * len(NUMERIC_FEATURES),
                      [0.0] * len(AGGREGATE_FEATURES), [1.0] * len(AGGREGATE_FEATURES),
                      float(np.quantile(latencies, 0.95)) if len(latencies) else float("inf"),
                      float(np.quantile(gaps, 0.99)) if len(gaps) else float("inf"),
                      "eventid" if "eventid" in fields else fields[0], max_events)
        raw = encoder._encode(events, windows, table, scale=False)
        real = raw["padding_mask"]
        numeric, aggregates = raw["numeric"][real], raw["aggregates"]

        def spread(values: np.ndarray) -> list[float]:
            std = values.std(axis=0) if len(values) else np.ones(values.shape[1])
            return [float(s) if s > 1e-9 else 1.0 for s in std]  # a constant column stays as it is

        return cls(fields, vocabularies,
                   [float(m) for m in (numeric.mean(axis=0) if len(numeric) else np.zeros(len(NUMERIC_FEATURES)))],
                   spread(numeric), [float(m) for m in aggregates.mean(axis=0)], spread(aggregates),
                   encoder.latency_spike, encoder.gap_spike, encoder.event_field, max_events)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogEncoder:
        return cls(**{"flag_count": FLAGS_BEFORE_SEVERE, **data, "fields": tuple(data["fields"])})

    def ids(self, events: LogEvents) -> np.ndarray:
        """``(events, fields)`` ids in the shared id space; unseen values get their field's unknown id."""
        frame = events.frame
        missing = [f for f in self.fields if f not in frame.columns]
        if missing:
            raise ValueError(f"The log lacks the categorical field {missing[0]!r} the model was trained on. "
                             f"Accepted: a {events.log_format.name!r} log with fields {', '.join(self.fields)}")
        columns = []
        for field, offset in zip(self.fields, self.offsets, strict=True):
            lookup = {value: offset + 1 + i for i, value in enumerate(self.vocabularies[field])}
            columns.append(np.fromiter((lookup.get(v, offset) for v in frame[field].to_numpy()), np.int64,
                                       count=len(frame)))
        return np.stack(columns, axis=1).astype(np.int32) if columns else np.zeros((len(frame), 0), np.int32)

    def encode(self, events: LogEvents, windows: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The model's named inputs (and ``counts``, the baselines' count vectors) for each window."""
        return self._encode(events, windows, event_table(events), scale=True)

    def _encode(self, events: LogEvents, windows: Sequence[np.ndarray], table: dict[str, np.ndarray],
                scale: bool) -> dict[str, np.ndarray]:
        n, length, fields = len(windows), self.max_events, len(self.fields)
        numeric = np.zeros((n, length, len(NUMERIC_FEATURES)), np.float32)
        flags = np.zeros((n, length, len(FLAG_FEATURES)), np.float32)
        categorical = np.tile(np.asarray(self.offsets, np.int32), (n, length, 1)) if fields else \
            np.zeros((n, length, 0), np.int32)
        mask = np.zeros((n, length), bool)
        aggregates = np.zeros((n, len(AGGREGATE_FEATURES)), np.float32)
        counts = np.zeros((n, len(self.vocabularies[self.event_field]) + 1), np.float32)
        ids = self.ids(events)
        event_column = self.fields.index(self.event_field)
        event_ids = ids[:, event_column] - self.offsets[event_column]  # 0 = unknown
        static = np.stack([table[f] for f in NUMERIC_FEATURES[3:]], axis=1)
        for i, rows in enumerate(windows):
            seconds = table["seconds"][rows]
            gaps = _gaps(seconds)
            span = max(float(seconds[-1] - seconds[0]), 1e-9)
            kept = slice(0, min(len(rows), length))
            k = kept.stop
            numeric[i, :k, 0] = np.log1p(gaps[kept])
            numeric[i, :k, 1] = (seconds[kept] - seconds[0]) / span
            numeric[i, :k, 2] = np.arange(k) / length
            numeric[i, :k, 3:] = static[rows[kept]]
            flags[i, :k, :5] = np.stack([table[f][rows[kept]] for f in FLAG_FEATURES[:5]], axis=1)
            flags[i, :k, 5] = table["has_latency"][rows[kept]] & (table["latency"][rows[kept]] > self.latency_spike)
            flags[i, :k, 6] = gaps[kept] > self.gap_spike
            flags[i, :k, 7] = event_ids[rows[kept]] == 0
            flags[i, :k, 8] = table["severe_level"][rows[kept]]
            categorical[i, :k] = ids[rows[kept]]
            mask[i, :k] = True
            window_ids = event_ids[rows]
            counts[i] = np.bincount(window_ids, minlength=counts.shape[1])
            latency = table["log_latency"][rows][table["has_latency"][rows]]
            aggregates[i] = [np.log1p(len(rows)), len(np.unique(window_ids)) / len(rows),
                             table["error_level"][rows].mean(), table["warning_level"][rows].mean(),
                             table["failure_words"][rows].mean(), np.log1p(span if len(rows) > 1 else 0.0),
                             np.log1p(gaps[1:].mean() if len(rows) > 1 else 0.0),
                             latency.mean() if len(latency) else 0.0, latency.max() if len(latency) else 0.0,
                             table["severe_level"][rows].mean(), float(np.mean(window_ids == 0))]
        # an encoder stored before a feature was added encodes what its model reads: the first ones
        flags, aggregates = flags[..., :self.flag_count], aggregates[:, :len(self.aggregate_mean)]
        if scale:
            numeric = np.where(mask[..., None], (numeric - np.float32(self.numeric_mean)) / np.float32(self.numeric_std),
                               0.0).astype(np.float32)
            aggregates = ((aggregates - np.float32(self.aggregate_mean)) / np.float32(self.aggregate_std)).astype(np.float32)
        return {"numeric": numeric, "flags": flags, "categorical": categorical, "padding_mask": mask,
                "aggregates": aggregates, "counts": counts}


def window_labels(events: LogEvents, windows: Sequence[np.ndarray]) -> np.ndarray:
    """1.0 for a window with any labelled event, else 0.0 (NaN for an unlabelled log)."""
    labels = events.frame["label"].to_numpy(np.float64)
    return np.array([labels[w].max() for w in windows], np.float64)


def truncated(windows: Sequence[np.ndarray], max_events: int) -> int:
    """How many windows hold more events than the sequence inputs keep."""
    return int(sum(len(w) > max_events for w in windows))
