"""Quiet by default: TensorFlow's native start-up notices are dropped from stderr, everything else passes.

TensorFlow 2.21 logs through absl from C++ at import time (the oneDNN notice, CPU-instruction notices,
``E0000 ... NodeDef mentions attribute ...``), before and regardless of ``TF_CPP_MIN_LOG_LEVEL`` (a known
TensorFlow issue). :class:`NativeLogFilter` puts a pipe in front of file descriptor 2 for the duration of a
command and drops the lines in absl's C++ format; Python's own messages, tracebacks and every other line reach
the terminal unchanged and in order. Errors that matter still surface as Python exceptions. ``atb --debug``
leaves stderr alone.

Example:
    >>> NATIVE_LOG_LINE.match("I0000 00:00:1796653148.360494   21479 port.cc:153] oneDNN custom operations are on.") is not None
    True
"""

from __future__ import annotations

import os
import re
import sys
import threading

NATIVE_LOG_LINE = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\] |WARNING: All log messages before "
                             r"absl::InitializeLog\(\) is called|To enable the following instructions: )")
"""A native (absl/TensorFlow C++) log line, or the two notices that come with them."""


class NativeLogFilter:
    """While active, lines written to file descriptor 2 that match :data:`NATIVE_LOG_LINE` are dropped.

    Only where stderr is the process's own (not a test's capture): otherwise it does nothing.
    """

    def __init__(self) -> None:
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NativeLogFilter:
        if sys.stderr is not sys.__stderr__:
            return self
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            read, write = os.pipe()
            os.dup2(write, 2)
            os.close(write)
        except OSError:  # no file descriptor 2 to filter (an embedded interpreter): leave it
            self._saved = None
            return self
        self._thread = threading.Thread(target=self._pump, args=(read, self._saved), daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _pump(read: int, out: int) -> None:
        with os.fdopen(read, "r", errors="replace", newline="") as lines:
            for line in lines:
                if not NATIVE_LOG_LINE.match(line):
                    os.write(out, line.encode(errors="replace"))

    def __exit__(self, *exc) -> None:
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the pump reads to the end and stops
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._saved)
        self._saved = None
