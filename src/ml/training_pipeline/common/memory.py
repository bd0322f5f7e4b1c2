"""Memory a run needs, estimated before the windows are made, against what the machine has free.

A run on millions of rows used to be killed by the kernel's OOM killer half-way (issue 24: a 1M-row TCN run
peaked at 12.4 GB when every window was held in memory 3.3 times). Windows are now cut per batch from the scaled
rows they view (``common.windows.to_tf_dataset``), in training and in prediction, so what grows with the rows
is the rows themselves: the loaded bars, the features (float64), their scaled float32 copy, targets and indices.
Measured with ``atb train model SYN --model-type tcn --epochs 1 --steps-per-epoch 20`` on 197k and 394k hourly
rows of 15 features: peak 1.094 GB and 1.161 GB, 0.34 KB per row; on one-minute rows (benchmarks/scale.py)
1.10-1.12 GB at 50k, 1.57 GB at 1M, 2.86 GB at 2.6M: up to 0.69 KB per row, 46 bytes per row and feature. The
estimate is ``FIXED_BYTES + rows x features x BYTES_PER_ROW_FEATURE`` (rounded up); a run whose estimate
exceeds the memory available (``MemAvailable`` plus free swap) is refused in one line before any window is made
(:class:`NotEnoughMemory`). Not counted yet: the paths that still copy windows (several symbols pooled into one
training set, curriculum phases, LightGBM's flattened windows).

Example:
    >>> estimate_bytes(rows=2_600_000, features=15) / 1e9  # 2.6M one-minute bars: 2.86 GB measured
    2.872
"""

from __future__ import annotations

from pathlib import Path

FIXED_BYTES = 1.0e9
"""TensorFlow, the model and the rest of the process (the intercept of the measured fit: 1.03 GB)."""
BYTES_PER_ROW_FEATURE = 48
"""Bytes per data row and feature at the peak: the measured slopes were 0.34 KB per hourly row and 0.47-0.69 KB
per one-minute row (benchmarks/scale.py, 200k to 2.6M rows) of 15 features; the largest, rounded up."""


class NotEnoughMemory(MemoryError, ValueError):
    """The run would not fit: a ``MemoryError`` that the CLI reports as bad input (one line, exit 2)."""


def estimate_bytes(rows: int, features: int) -> float:
    """Peak bytes of training on ``rows`` rows of ``features`` (windows are views of the rows: their length adds
    nothing)."""
    return FIXED_BYTES + rows * features * BYTES_PER_ROW_FEATURE


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
        >>> check_memory(26_000_000, 60, 15, available=8e9)
        Traceback (most recent call last):
        ...
        ml.training_pipeline.common.memory.NotEnoughMemory: Training on 26,000,000 windows of 60 x 15 needs about 19.7 GB (1.0 GB + 0.7 KB per window, measured); 8.0 GB are available. Accepted: at most 9,720,000 windows here: fewer rows (--days, --start-date), fewer --covariates, or a machine with more memory
    """
    available = available_bytes() if available is None else available
    needed = estimate_bytes(rows, features)
    if available is None or needed <= available:
        return
    per_window = features * BYTES_PER_ROW_FEATURE
    fits = max(0, int((available - FIXED_BYTES) // per_window))
    step = 10 ** max(len(str(fits)) - 3, 0)  # three significant digits, rounded down
    fits = fits // step * step
    raise NotEnoughMemory(f"Training on {rows:,} windows of {length} x {features} needs about {needed / 1e9:.1f} GB "
                      f"({FIXED_BYTES / 1e9:.1f} GB + {per_window / 1e3:.1f} KB per window, measured); "
                      f"{available / 1e9:.1f} GB are available. Accepted: at most {fits:,} windows here: fewer rows "
                      "(--days, --start-date), fewer --covariates, or a machine with more memory")
