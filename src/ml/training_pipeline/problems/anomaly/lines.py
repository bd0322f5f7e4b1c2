"""Raw log lines split into named fields by a LogPAI-style line format.

A line format names the fields of one line in order, with the text between them as it appears:
``"<Date> <Time> <Level> <Component>: <Content>"``. Spaces between fields match any run of spaces, the
other text between fields is a regular expression (``\\[<ADDR>\\]`` for a bracketed field), every
field but the last is the shortest text that lets the line match, and the last takes the rest of the
line: the convention of LogPAI's parsers (Zhu et al., "Tools and Benchmarks for Automated Log Parsing",
ICSE-SEIP 2019), so their published formats work as written. One addition: ``<Field:regex>`` says what a
field may hold (``<Level:[A-Z]+>``), where the shortest text would split the line in the wrong place.

Every field but the last starts with a non-space character. A line that does not match, or whose fields
the caller rejects (e.g. a time that does not parse), continues the previous one (a stack trace, a wrapped
message): its text is appended to the previous line's last field. Leading lines that match nothing are
dropped and counted.

Example:
    >>> frame, counts = parse_lines(["2024-01-02 10:00:01 ERROR disk sda failed", "  at line 3",
    ...                              "2024-01-02 10:00:05 INFO user 7 logged in"], "<Date> <Time> <Level> <Content>")
    >>> frame["Content"].tolist()
    ['disk sda failed at line 3', 'user 7 logged in']
    >>> counts
    {'lines': 3, 'events': 2, 'continuation_lines': 1, 'dropped_lines': 0}
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

_FIELD = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::([^<>]+))?>")
PROGRESS_EVERY = 10_000
"""Lines between two calls of :func:`parse_lines`' ``progress``."""
MOST_UNMATCHED_SHARE = 0.5
"""Above this share of lines that match no line start, the file is taken for another layout and refused."""


def line_fields(line_format: str) -> tuple[str, ...]:
    """The field names of a line format, in order.

    Raises:
        ValueError: no field, a repeated field, or no text between two fields.
    """
    fields = tuple(name for name, _ in _FIELD.findall(line_format))
    if not fields:
        raise ValueError(f"A line format names its fields as <Field>, e.g. '<Date> <Time> <Level> <Content>'. "
                         f"Received: {line_format!r}")
    repeated = sorted({f for f in fields if fields.count(f) > 1})
    if repeated:
        raise ValueError(f"A line format names each field once. Received: {repeated[0]!r} twice in {line_format!r}")
    if "><" in line_format:  # nothing tells where the first ends
        raise ValueError(f"A line format needs text (at least a space) between two fields. Received: {line_format!r}")
    return fields


def line_pattern(line_format: str) -> re.Pattern[str]:
    """The regular expression of a line format: one named group per field.

    Example:
        >>> line_pattern(r"<Level> \\[<Component>\\] <Content>").match("INFO [net] link up")["Component"]
        'net'
        >>> line_pattern("<Time> <Level:[A-Z]+> <Content>").match("2024-01-02 10:00:01 INFO up")["Time"]
        '2024-01-02 10:00:01'
    """
    fields = line_fields(line_format)
    parts = _FIELD.split(line_format)  # text, name, regex or None, text, name, regex or None, ..., text
    pattern = ""
    for index in range(0, len(parts), 3):
        text = parts[index] if index else parts[index].lstrip()
        pattern += re.sub(" +", r"\\s+", text)  # runs of spaces are any run of spaces, the rest a regex
        if index + 1 < len(parts):
            name, regex = parts[index + 1], parts[index + 2]
            # the last field takes the rest of the line; the others start with a non-space, as short as they can
            default = r".*" if name == fields[-1] else r"\S.*?"
            pattern += f"(?P<{name}>{regex or default})"
    try:
        return re.compile(f"^{pattern}$")
    except re.error as error:
        raise ValueError(f"The line format {line_format!r} is not a valid pattern: {error}") from None


def read_lines(path: str | Path) -> Iterator[str]:
    """A text log's lines without their line ends (``.gz`` files decompressed); undecodable bytes replaced."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            yield line.rstrip("\r\n")


class EventSplitter:
    """Splits lines into events one line at a time: the rule :func:`parse_lines` applies to a whole file and a
    live follower applies as lines arrive. The newest event stays open (a wrapped line may still continue it).

    Args:
        line_format: e.g. ``"<Date> <Time> <Level> <Content>"``.
        starts: called with a matching line's fields; ``False`` makes it a continuation line instead.

    Example:
        >>> splitter = EventSplitter("<Level> <Content>")
        >>> splitter.add("ERROR disk failed"), splitter.add("  at line 3"), splitter.add("INFO up")
        ([], [], [['ERROR', 'disk failed at line 3']])
        >>> splitter.counts
        {'lines': 3, 'events': 1, 'continuation_lines': 1, 'dropped_lines': 0}
    """

    def __init__(self, line_format: str, starts: Callable[[dict[str, str]], bool] | None = None):
        self.fields = line_fields(line_format)
        self.pattern, self.starts = line_pattern(line_format), starts
        self.open: list[str] | None = None
        self.first_unmatched: str | None = None
        self.counts = {"lines": 0, "events": 0, "continuation_lines": 0, "dropped_lines": 0}

    def add(self, line: str) -> list[list[str]]:
        """Reads one line; returns the event it closed (a list of one), if any."""
        self.counts["lines"] += 1
        if not line.strip():
            self.counts["dropped_lines"] += 1
            return []
        found = self.pattern.match(line)
        if found and (self.starts is None or self.starts(found.groupdict())):
            closed = self.close()
            self.open = [found[f] for f in self.fields]
            return closed
        self.first_unmatched = line if self.first_unmatched is None else self.first_unmatched
        if self.open is not None:
            self.open[-1] = f"{self.open[-1]} {line.strip()}"
            self.counts["continuation_lines"] += 1
        else:
            self.counts["dropped_lines"] += 1
        return []

    def close(self) -> list[list[str]]:
        """Ends the open event (at the end of a file) and returns it (a list of one), if any."""
        if self.open is None:
            return []
        closed, self.open = [self.open], None
        self.counts["events"] += 1
        return closed


def parse_lines(lines: Iterable[str], line_format: str, source: str = "lines",
                starts: Callable[[dict[str, str]], bool] | None = None,
                progress: Callable[[int], None] | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Raw lines as a table with one column per field of ``line_format`` (text), and what was read.

    Args:
        lines: the lines, without line ends.
        line_format: e.g. ``"<Date> <Time> <Level> <Content>"``.
        source: the file's name, for messages.
        starts: called with a matching line's fields; ``False`` makes it a continuation line instead (a
            wrapped line whose first words happen to fit the format).
        progress: called with the lines read so far, every :data:`PROGRESS_EVERY` lines.

    Returns:
        The table (one row per event) and counts: ``lines`` read, ``events``, ``continuation_lines``
        appended to the event before them, ``dropped_lines`` before the first event (and blank lines).

    Raises:
        ValueError: no line matches, or more than half the lines do not (another layout).
    """
    import pandas as pd

    splitter = EventSplitter(line_format, starts)
    rows: list[list[str]] = []
    for line in lines:
        rows += splitter.add(line)
        if progress is not None and splitter.counts["lines"] % PROGRESS_EVERY == 0:
            progress(splitter.counts["lines"])
    rows += splitter.close()
    counts = splitter.counts
    unmatched = counts["continuation_lines"] + counts["dropped_lines"]
    if not rows or unmatched > MOST_UNMATCHED_SHARE * counts["lines"]:
        raise ValueError(f"{source}: {unmatched} of {counts['lines']} lines do not match the line format "
                         f"{line_format!r}, e.g. {(splitter.first_unmatched or '')[:120]!r}. Accepted: lines that "
                         f"start with the fields {', '.join(splitter.fields[:-1])}, or another --log-format")
    return pd.DataFrame(rows, columns=list(splitter.fields)), counts


def render_lines(rows: Iterable[dict[str, str]], line_format: str) -> list[str]:
    """Raw lines from fields, the inverse of :func:`parse_lines` for a format whose text between fields is plain
    (escaped characters such as ``\\[`` are written as themselves): a structured log written back as raw text.

    Example:
        >>> render_lines([{"Level": "INFO", "ADDR": "10.0.0.1", "Content": "up"}], r"<Level> \\[<ADDR>\\] <Content>")
        ['INFO [10.0.0.1] up']
    """
    parts = _FIELD.split(line_format)  # text, name, regex or None, text, ...
    texts = [re.sub(r"\\(.)", r"\1", parts[i]) for i in range(0, len(parts), 3)]
    names = [parts[i] for i in range(1, len(parts), 3)]
    return [texts[0] + "".join(str(row[name]) + text for name, text in zip(names, texts[1:], strict=True))
            for row in rows]
