"""Checksums of stored versions: every file's sha256 is recorded when a version is stored and checked
whenever it is loaded, so a modified, truncated or swapped file is refused instead of silently used.

Two records, so that no file vouches for itself:

* ``metadata.json`` lists every other file of the version with its sha256 and size (``"files"``);
* ``SHA256SUMS`` lists every file *including* ``metadata.json``, in the format ``sha256sum -c`` reads, so
  a version can also be checked without this library (``cd <version> && sha256sum -c SHA256SUMS``).

Example:
    >>> from ml.training_pipeline.store.integrity import verify_version
    >>> verify_version("src/ml/models/BTCUSDT/price/latest").ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

CHECKSUM_FILE = "SHA256SUMS"
METADATA_FILE = "metadata.json"
_CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks.

    Example:
        >>> sha256_of("model.onnx")  # doctest: +SKIP
        '3f2a...'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    """The version's regular files (not the checksum list, not hidden staging markers), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != CHECKSUM_FILE)


def seal(folder: str | Path) -> dict[str, dict]:
    """Records the checksums of a version folder about to be stored (the store calls this on commit).

    Adds ``"files": {name: {"sha256", "bytes"}}`` (every file but ``metadata.json``) to ``metadata.json``,
    then writes ``SHA256SUMS`` over every file.

    Returns:
        The ``files`` record.

    Raises:
        ValueError: ``metadata.json`` is missing or not a JSON object.
    """
    folder = Path(folder)
    metadata_path = folder / METADATA_FILE
    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot record checksums: {metadata_path} is unreadable ({error})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"Cannot record checksums: {metadata_path} is not a JSON object")
    files = {p.name: {"sha256": sha256_of(p), "bytes": p.stat().st_size}
             for p in _files(folder) if p.name != METADATA_FILE}
    metadata["files"] = files
    metadata_path.write_text(json.dumps(metadata, indent=2, default=str))
    lines = [f"{sha256_of(p)}  {p.name}" for p in _files(folder)]
    (folder / CHECKSUM_FILE).write_text("\n".join(lines) + "\n")
    return files


@dataclass(frozen=True)
class Verification:
    """The result of checking one version folder.

    Attributes:
        path: the version folder.
        sealed: whether checksums were recorded (versions stored before this release have none).
        checked: files whose checksum matched.
        problems: one line per file that is modified, truncated, missing or unrecorded.
    """

    path: Path
    sealed: bool
    checked: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """No problem found (an unsealed version is not a failure, only unverifiable)."""
        return not self.problems

    def summary(self) -> str:
        """One line: ``ok (7 files)``, ``no checksums recorded`` or the problems."""
        if self.problems:
            return "; ".join(self.problems)
        return f"ok ({self.checked} files)" if self.sealed else "no checksums recorded (stored before checksums)"


def _parse_sums(text: str) -> dict[str, str]:
    sums = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) == 64 and name:
            sums[name.strip()] = digest
    return sums


def verify_version(folder: str | Path) -> Verification:
    """Checks every file of a stored version against both records.

    Example:
        >>> result = verify_version("src/ml/models/BTCUSDT/price/latest")  # doctest: +SKIP
        >>> result.summary()  # doctest: +SKIP
        'ok (8 files)'
    """
    folder = Path(folder)
    sums_path = folder / CHECKSUM_FILE
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, ValueError):
        metadata = None
    recorded = metadata.get("files") if isinstance(metadata, dict) else None
    problems: list[str] = []
    if recorded is not None and not (isinstance(recorded, dict) and all(isinstance(e, dict) for e in recorded.values())):
        problems.append(f"{METADATA_FILE}'s checksum record ('files') is malformed")
        recorded = {}
    if not sums_path.is_file() and recorded is None:
        return Verification(folder, sealed=False)
    if not sums_path.is_file():
        return Verification(folder, True, 0, (*problems, f"{CHECKSUM_FILE} is missing"))
    try:
        sums = _parse_sums(sums_path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return Verification(folder, True, 0, (*problems, f"{CHECKSUM_FILE} is not a text checksum list"))
    checked = 0
    present = {p.name: p for p in _files(folder)}
    for name, digest in sums.items():
        path = present.get(name)
        if path is None:
            problems.append(f"{name} is missing")
            continue
        expected_bytes = (recorded or {}).get(name, {}).get("bytes")
        actual = sha256_of(path)
        if actual != digest:
            size = path.stat().st_size
            how = (f"truncated to {size} of {expected_bytes} bytes" if expected_bytes is not None and size < expected_bytes
                   else "modified")
            problems.append(f"{name} is {how} (sha256 {actual[:12]}... recorded {digest[:12]}...)")
            continue
        checked += 1
    for name in present:
        if name not in sums:
            problems.append(f"{name} was added after the version was stored")
    if recorded is None:
        problems.append(f"{METADATA_FILE} has no checksum record")
    else:
        for name, entry in recorded.items():
            if sums.get(name) not in (None, entry.get("sha256")):
                problems.append(f"{name}: {CHECKSUM_FILE} and {METADATA_FILE} disagree")
            elif name not in sums and name in present:
                problems.append(f"{name} is not listed in {CHECKSUM_FILE}")
    return Verification(folder, True, checked, tuple(dict.fromkeys(problems)))
