"""Memory a run needs, estimated before the windows are made, against what the machine has free.

A run on millions of rows used to be killed by the kernel's OOM killer half-way (issue 24: a 1M-row TCN run
peaked at 12.4 GB when every window was held in memory 3.3 times). Windows are now cut per batch from the scaled
rows they view (``common.windows.to_tf_dataset``), in training and in prediction; features are computed in
chunks and scaled by blocks; LightGBM reads the windows' columns in place. What grows with the rows is the rows
themselves (the bars, the float64 features, their scaled float32 copy, targets and indices) and, for a model kind
that holds a representation of every window (LightGBM's binned columns), that: ``ModelKind.window_value_bytes``.
Measured with ``python benchmarks/scale.py`` (one-minute rows of 15 features, one 20-batch epoch or one boosting
round): tcn 1.09 GB at 50k rows and 1.92 GB at 2.6M (322 bytes per row, 21 per row and feature; 1.57 GB and 181
bytes since big data is gathered by NumPy and shuffled by one permutation per epoch, ``windows.GATHER_IN_NUMPY_BYTES``
and ``SHUFFLE_BY_PERMUTATION_WINDOWS``: the constant below keeps the safer figure); lightgbm 0.72 and 3.06 GB (918
bytes per row). The estimate is ``FIXED_BYTES + rows x features x BYTES_PER_ROW_FEATURE + rows x
length x features x window_value_bytes``; a run whose estimate exceeds the memory available (``MemAvailable`` plus
free swap) is refused in one line before any window is made (:class:`NotEnoughMemory`). Several symbols in one
model join their scaled rows once more (their windows are starts in the joined rows), which their check counts;
windows with holes are starts in their rows too, so nothing grows with the window length for a Keras model.

Example:
    >>> estimate_bytes(rows=2_600_000, features=15) / 1e9  # 2.6M one-minute bars, a Keras model: 1.92 GB measured
    1.936
    >>> estimate_bytes(rows=2_600_000, features=15, length=60, window_value_bytes=0.7) / 1e9  # lightgbm: 3.06 GB
    3.574
"""

from __future__ import annotations

from pathlib import Path

FIXED_BYTES = 1.0e9
"""TensorFlow, the model and the rest of the process (1.09 GB measured at 50k rows with TensorFlow, 0.72 without)."""
BYTES_PER_ROW_FEATURE = 24
"""Bytes per data row and feature at the peak: 322 bytes per one-minute row of 15 features (21.5 per feature)
measured from 50k to 2.6M rows (benchmarks/scale.py, tcn), rounded up."""


class NotEnoughMemory(MemoryError, ValueError):
    """The run would not fit: a ``MemoryError`` that the CLI reports as bad input (one line, exit 2)."""


def estimate_bytes(rows: int, features: int, length: int = 1, window_value_bytes: float = 0.0,
                   extra_row_feature_bytes: float = 0.0) -> float:
    """Peak bytes of training on ``rows`` rows of ``features``, in windows of ``length`` rows, for a model kind that
    holds ``window_value_bytes`` per window value (0: windows are views of the rows, their length adds nothing), and
    ``extra_row_feature_bytes`` per row and feature beyond :data:`BYTES_PER_ROW_FEATURE` (several symbols' rows
    joined into one array)."""
    return FIXED_BYTES + rows * features * (BYTES_PER_ROW_FEATURE + extra_row_feature_bytes + length * window_value_bytes)


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


def check_memory(rows: int, length: int, features: int, available: float | None = None,
                 window_value_bytes: float = 0.0, extra_row_feature_bytes: float = 0.0) -> None:
    """Refuses, in one line with what would fit, a run whose estimated peak exceeds the available memory.

    Args:
        rows: windows the run would make (about the data's rows).
        length, features: one window's shape.
        available: bytes free; ``None`` reads :func:`available_bytes` (a machine without ``/proc/meminfo`` is not
            checked).
        window_value_bytes: what the model kind holds per window value (``ModelKind.window_value_bytes``).
        extra_row_feature_bytes: bytes per row and feature on top of the measured ones (several symbols pooled).

    Raises:
        NotEnoughMemory: the estimate exceeds what is available.

    Example:
        >>> check_memory(26_000_000, 60, 15, available=8e9)
        Traceback (most recent call last):
        ...
        ml.training_pipeline.common.memory.NotEnoughMemory: Training on 26,000,000 windows of 60 x 15 needs about 10.4 GB (1.0 GB + 0.4 KB per window, measured); 8.0 GB are available. Accepted: at most 19,400,000 windows here: fewer rows (--days, --start-date), fewer --covariates, or a machine with more memory
    """
    available = available_bytes() if available is None else available
    needed = estimate_bytes(rows, features, length, window_value_bytes, extra_row_feature_bytes)
    if available is None or needed <= available:
        return
    per_window = estimate_bytes(1, features, length, window_value_bytes, extra_row_feature_bytes) - FIXED_BYTES
    fits = max(0, int((available - FIXED_BYTES) // per_window))
    step = 10 ** max(len(str(fits)) - 3, 0)  # three significant digits, rounded down
    fits = fits // step * step
    raise NotEnoughMemory(f"Training on {rows:,} windows of {length} x {features} needs about {needed / 1e9:.1f} GB "
                      f"({FIXED_BYTES / 1e9:.1f} GB + {per_window / 1e3:.1f} KB per window, measured); "
                      f"{available / 1e9:.1f} GB are available. Accepted: at most {fits:,} windows here: fewer rows "
                      "(--days, --start-date), fewer --covariates, or a machine with more memory")
