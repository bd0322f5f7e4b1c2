"""Live detection on a growing raw log: new lines parsed, windowed and scored as they arrive.

A :class:`LogFollower` reads what was appended to a log file since its last look (a file that shrank was
rotated or truncated: it starts again from the top), splits the new lines with the stored format's line
layout, maps their messages to the stored Drain3 templates (without learning: a new message is unseen), and
scores every window that became complete with the stored model, in the stored windowing:

- event windows of ``L`` events every ``S``: window ``k`` holds events ``k*S .. k*S+L-1`` of the stream and is
  complete when its last event has arrived;
- time windows: window ``k`` spans ``[t0 + k*step, t0 + k*step + length)`` from the first event's time ``t0``
  and is complete when a later event has arrived (a quiet log leaves the current window open); sliding windows
  that hold the same events as the one before are scored once, as in training.

Session windows end when a session ends, which a growing file never says: they are refused. The newest event
waits for the next line before it is scored (a wrapped line may still continue it). Only the events a future
window can use are kept, so memory stays flat however long it runs.

Example:
    >>> follower = LogFollower(stored.schema, "app.log", score=score_windows)  # doctest: +SKIP
    >>> follower.follow(print, until_idle=30)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.training_pipeline.problems.anomaly.formats import get_log_format, read_log_events, starts_event, with_templates
from ml.training_pipeline.problems.anomaly.lines import EventSplitter
from ml.training_pipeline.problems.anomaly.templates import LogTemplates
from ml.training_pipeline.problems.anomaly.windows import ERROR_LEVELS, LogEncoder, Windowing

TOP_LINES = 3
"""Lines shown for an anomalous window: its events with templates unseen in training first, then error levels and
failure words, in file order."""


class LogFollower:
    """Scores the windows of a growing raw log file with a stored anomaly model.

    Args:
        schema: the stored version's ``feature_schema.json`` (a model trained on a raw log: it holds the templates).
        path: the log file.
        score: ``score(encoded) -> probabilities`` for the encoder's arrays of some windows.
        from_start: read the file from its first line (default: only what is appended from now on).
    """

    def __init__(self, schema: dict[str, Any], path: str | Path, score: Callable[[dict[str, np.ndarray]], np.ndarray],
                 *, from_start: bool = False):
        if not schema.get("templates"):
            raise ValueError("--follow reads a growing raw log: this model was trained on a structured CSV, whose "
                             "template ids a raw line does not have. Accepted: a model trained on a raw log")
        self.windowing = Windowing.from_dict(schema["windowing"])
        if self.windowing.by == "session":
            raise ValueError("--follow scores windows as they complete; a session window completes when its session "
                             "ends, which a growing file never says. Accepted: a model trained on time or event windows")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Log file not found: {str(self.path)!r}. Accepted: a raw log file to follow")
        self.format = get_log_format(schema["log_format"])
        self.splitter = EventSplitter(self.format.line_format, starts_event(self.format))
        self.templates = LogTemplates.from_dict(schema["templates"])
        self.encoder = LogEncoder.from_dict(schema["encoder"])
        self.threshold = float(schema["threshold"])
        self.score = score
        self.handle = open(self.path, "rb")  # noqa: SIM115  (held open while following; closed by close())
        if not from_start:
            self.handle.seek(0, os.SEEK_END)
        self.partial = b""
        self.events: list[list[str]] = []  # complete events a future window may still use
        self.ids: list[str] = []  # their template ids, matched once when they complete
        self.first = 0  # the stream index of events[0]
        self.next_window = 0  # the next window to score
        self.origin: np.datetime64 | None = None  # time windows: the first event's time
        self.previous: tuple[int, int] | None = None  # the stream span of the last scored window
        self.tally = {"windows": 0, "anomalous": 0, "restarts": 0}
        self.busy_s = 0.0

    def close(self) -> None:
        self.handle.close()

    def read(self) -> list[str]:
        """The complete lines appended since the last call."""
        position = self.handle.tell()
        if os.fstat(self.handle.fileno()).st_size < position:  # rotated or truncated: its new content from the top
            self.handle.seek(0)
            self.partial = b""
            self.tally["restarts"] += 1
        data = self.partial + self.handle.read()
        *lines, self.partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in lines]

    def add(self, lines: Sequence[str]) -> None:
        """Splits lines into events (a line that does not start one continues the newest, which stays open) and
        matches the completed events to the stored templates."""
        completed = [event for line in lines for event in self.splitter.add(line)]
        if completed:
            self.events += completed
            self.ids += self.templates.match([event[-1] for event in completed])

    @property
    def lines(self) -> int:
        return self.splitter.counts["lines"]

    @property
    def counts(self) -> dict[str, int]:
        """Lines read, events, continuation and dropped lines; windows scored, anomalous ones, restarts."""
        return {**self.splitter.counts, **self.tally}

    def poll(self) -> list[dict[str, Any]]:
        """Reads what was appended and returns every window completed by it, scored."""
        started = time.perf_counter()
        self.add(self.read())
        verdicts = self.complete_windows()
        self.busy_s += time.perf_counter() - started
        return verdicts

    def _spans(self, times: np.ndarray) -> list[tuple[int, int]]:
        """Stream spans ``[a, b)`` of the windows completed by the events held, from ``next_window`` on."""
        end = self.first + len(self.events)
        spans = []
        if self.windowing.by == "events":
            length, step = int(self.windowing.amount("length")), int(self.windowing.amount("step"))
            while self.next_window * step + length <= end:
                start = self.next_window * step
                spans.append((start, start + length))
                self.next_window += 1
            return spans
        length, step = self.windowing.amount("length"), self.windowing.amount("step")
        seconds = (times - self.origin) / np.timedelta64(1, "s")
        while True:
            start = self.next_window * step
            if seconds[-1] < start + length:  # no event after the window yet: it may still grow
                return spans
            low, high = np.searchsorted(seconds, [start, start + length], side="left")
            self.next_window += 1
            if high > low:
                span = (self.first + int(low), self.first + int(high))
                if span != self.previous:
                    spans.append(span)
                    self.previous = span
            elif low < len(seconds):  # an empty stretch: on to the first window that holds the next event
                self.next_window = max(self.next_window, math.floor((seconds[low] - length) / step) + 1)

    def complete_windows(self) -> list[dict[str, Any]]:
        if not self.events:
            return []
        import pandas as pd

        frame = pd.DataFrame(self.events, columns=list(self.splitter.fields))
        frame, _ = with_templates(frame, self.format, self.templates, ids=self.ids)
        events = read_log_events(frame, self.format, source=str(self.path))
        times = events.frame["time"].to_numpy()
        if self.origin is None:
            self.origin = times[0]
        spans = self._spans(times)
        verdicts = []
        if spans:
            windows = [np.arange(a - self.first, b - self.first) for a, b in spans]
            encoded = self.encoder.encode(events, windows)
            probability = np.asarray(self.score(encoded), np.float64).reshape(-1)
            table = events.frame
            for rows, p in zip(windows, probability, strict=True):
                anomalous = bool(p >= self.threshold)
                self.tally["windows"] += 1
                self.tally["anomalous"] += anomalous
                verdicts.append({"start": table["time"].iloc[rows[0]].isoformat(),
                                 "end": table["time"].iloc[rows[-1]].isoformat(), "events": int(len(rows)),
                                 "probability": float(p), "anomalous": anomalous,
                                 "top_lines": self._top_lines(table, rows) if anomalous else []})
        self._forget(times)
        return verdicts

    def _top_lines(self, table, rows: np.ndarray) -> list[str]:
        unseen = ~table["eventid"].iloc[rows].isin(set(self.encoder.vocabularies[self.encoder.event_field])).to_numpy()
        level = table["level"].iloc[rows].astype(str).str.upper()
        error = level.isin(ERROR_LEVELS).to_numpy()
        order = sorted(range(len(rows)), key=lambda i: (not unseen[i], not error[i], i))[:TOP_LINES]
        return [f"{table['level'].iloc[rows[i]]} {table['content'].iloc[rows[i]]}"[:200] for i in order]

    def _forget(self, times: np.ndarray) -> None:
        """Drops the events no future window can hold."""
        if self.windowing.by == "events":
            keep_from = self.next_window * int(self.windowing.amount("step"))
        else:
            start = self.origin + np.timedelta64(int(self.next_window * self.windowing.amount("step") * 1e6), "us")
            keep_from = self.first + int(np.searchsorted(times, start, side="left"))
        drop = max(0, min(keep_from - self.first, len(self.events)))
        if drop:
            del self.events[:drop], self.ids[:drop]
            self.first += drop

    def follow(self, emit: Callable[[dict[str, Any]], None], *, poll_s: float = 1.0, until_idle: float | None = None,
               sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic
               ) -> dict[str, Any]:
        """Polls until Ctrl-C (or ``until_idle`` seconds without a new line), calling ``emit`` with each anomalous
        window; returns what it read and found, with the lines parsed and scored per second of work."""
        quiet_since, stopped = clock(), "interrupted"
        try:
            while True:
                before = self.lines
                for verdict in self.poll():
                    if verdict["anomalous"]:
                        emit(verdict)
                if self.lines > before:
                    quiet_since = clock()
                elif until_idle is not None and clock() - quiet_since >= until_idle:
                    stopped = "idle"
                    break
                sleep(poll_s)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()
        return {**self.counts, "stopped": stopped, "busy_s": self.busy_s,
                "lines_per_s": self.lines / self.busy_s if self.busy_s > 0 else float("nan")}
