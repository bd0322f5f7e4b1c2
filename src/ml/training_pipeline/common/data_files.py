"""The file(s) a data path names: one file, a folder of data files, or a glob pattern, and the data error type.

Shared by the config's early check (before any work) and the readers, so both accept the same paths.
"""

from __future__ import annotations

import glob
from pathlib import Path


class DataError(ValueError):
    """The data cannot be used as given; the message says what and where."""


DATA_SUFFIXES = (".csv", ".parquet", ".pq", ".gz", ".zip", ".bz2", ".xz", ".zst")
"""Files a data folder contributes (a CSV compressed as pandas reads it, or Parquet); others (a README, a
checksum) are left out."""


def data_files(data_path: str | Path) -> list[Path]:
    """The files ``data_path`` names: itself, a folder's data files, or a glob pattern's matches, sorted by name.

    Example:
        >>> from ml.data import bundled_sample_path
        >>> [p.name for p in data_files(bundled_sample_path("BTCUSDT"))]
        ['BTCUSDT_1h.csv.gz']
    """
    text = str(data_path)
    path = Path(text)
    if any(c in text for c in "*?[") and not path.exists():
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not files:
            raise DataError(f"No data file matches the pattern. Received: {text!r}")
        return files
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES))
        if not files:
            raise DataError(f"The data folder holds no CSV or Parquet file ({', '.join(DATA_SUFFIXES)}). "
                            f"Received: {text!r}")
        return files
    return [path]


def names_data(data_path: str | Path) -> bool:
    """Whether ``data_path`` names at least one existing file (:func:`data_files`; what is wrong with one, the
    reader says).

    Example:
        >>> names_data("no/such/file.csv"), names_data("no/such/*.csv")
        (False, False)
    """
    try:
        return all(path.is_file() for path in data_files(data_path))
    except DataError:
        return False
