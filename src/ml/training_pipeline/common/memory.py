"""Memory a run needs, estimated before the windows are built, against what the machine has free.

A run on millions of rows used to be killed by the kernel's OOM killer half-way (issue 24: a 1M-row TCN run
peaked at 12.4 GB, one attempt killed). The price problems hold each window in memory about 3.3 times during
training (the windows, TensorFlow's copy, the shuffle buffer; measured: peak = 1.0 GB + 12.0 KB per 60 x 15
window over 50k-1M rows, and 1.0 + 11.6 KB at 197k rows after the calendar input became lazy), so the
estimate is ``FIXED_BYTES + rows x length x features x 4 bytes x WINDOW_COPIES``; a run whose estimate exceeds
the memory available (``MemAvailable`` plus free swap) is refused in one line before any window is made
(:class:`NotEnoughMemory`).

Example:
    >>> estimate_bytes(rows=1_000_000, length=60, features=15) / 1e9  # the issue's 1M-row run: 12.4 GB measured
    12.88
"""

from __future__ import annotations

from pathlib import Path

FIXED_BYTES = 1.0e9
"""TensorFlow, the model and the rest of the process (the intercept of the measured fit)."""
WINDOW_COPIES = 3.3
"""Copies of each float32 window alive at the peak of training (the measured slope over one window's bytes)."""


class NotEnoughMemory(MemoryError, ValueError):
    """The run would not fit: a ``MemoryError`` that the CLI reports as bad input (one line, exit 2)."""


def estimate_bytes(rows: int, length: int, features: int) -> float:
    """Peak bytes of training on ``rows`` windows of ``length x features`` float32 values."""
    return FIXED_BYTES + rows * length * features * 4 * WINDOW_COPIES


def available_bytes(meminfo: str | None = None) -> float | None:
    """``MemAvailable`` plus ``SwapFree`` from ``/proc/meminfo`` (or the given text); ``None`` where there is none.

    Example:
        >>> available_bytes("MemTotal: 4000 kB\\nMemAvailable: 3000 kB\\nSwapFree: 1000 kB\\n")
        4096000.0
        >>> available_bytes("MemTotal: 4000 kB\\n") is None
        True
    """
    if meminfo is None:
        path = Path("/proc/meminfo")
        if not path.is_file():
            return None
        meminfo = path.read_text()
    fields = {}
    for line in meminfo.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * 1024  # kB
    if "MemAvailable" not in fields:
        return None
    return float(fields["MemAvailable"] + fields.get("SwapFree", 0))


def check_memory(rows: int, length: int, features: int, available: float | None = None) -> None:
    """Refuses, in one line with what would fit, a run whose estimated peak exceeds the available memory.

    Args:
        rows: windows the run would make (about the data's rows).
        length, features: one window's shape.
        available: bytes free; ``None`` reads :func:`available_bytes` (a machine without ``/proc/meminfo`` is not
            checked).

    Raises:
        NotEnoughMemory: the estimate exceeds what is available.

    Example:
        >>> check_memory(2_600_000, 60, 15, available=24e9)
        Traceback (most recent call last):
        ...
        ml.training_pipeline.common.memory.NotEnoughMemory: Training on 2,600,000 windows of 60 x 15 needs about 31.9 GB (1.0 GB + 11.9 KB per window, measured); 24.0 GB are available. Accepted: at most 1,930,000 windows here: fewer rows (--days, --start-date), a shorter --sequence-length, or a machine with more memory
    """
    available = available_bytes() if available is None else available
    needed = estimate_bytes(rows, length, features)
    if available is None or needed <= available:
        return
    per_window = length * features * 4 * WINDOW_COPIES
    fits = max(0, int((available - FIXED_BYTES) // per_window))
    step = 10 ** max(len(str(fits)) - 3, 0)  # three significant digits, rounded down
    fits = fits // step * step
    raise NotEnoughMemory(f"Training on {rows:,} windows of {length} x {features} needs about {needed / 1e9:.1f} GB "
                      f"({FIXED_BYTES / 1e9:.1f} GB + {per_window / 1e3:.1f} KB per window, measured); "
                      f"{available / 1e9:.1f} GB are available. Accepted: at most {fits:,} windows here: fewer rows "
                      "(--days, --start-date), a shorter --sequence-length, or a machine with more memory")
