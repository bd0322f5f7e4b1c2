"""The versioned model store on disk.

Layout: ``<root>/<NAME>/<problem>/<YYYY-MM-DD_HHh_vN>/`` where NAME is a symbol or a data-set
name and problem is the problem's key (``return``, ``direction``, ``volatility``, or a user
problem's name), with the native model file (``model.keras``, ``model.txt``), ``model.onnx``
(unless the model cannot be exported, which its metadata says), ``metadata.json``,
``feature_schema.json`` and plots; ``<root>/<NAME>/<problem>/latest`` points at the newest
complete version. Files and folders are readable by other users (0644 / 0755).

A version is written into a hidden temporary folder and renamed into place in one step,
so a crash or Ctrl-C never leaves a half version; an existing version is never
overwritten; ``latest`` is a symlink replaced atomically (a one-line text file where
symlinks are not available).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ml.training_pipeline.config import check_symbol

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}h_v(\d+)$")
_PROBLEM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LATEST = "latest"
REQUIRED_FILES = ("metadata.json", "feature_schema.json")
MODEL_FILES = ("model.onnx", "model.keras", "model.txt")
"""A version holds at least one of these."""


def check_problem_key(problem: object) -> str:
    """A problem key is a safe folder name: lower-case letters, digits, '_' or '-'.

    Example:
        >>> check_problem_key("volatility")
        'volatility'
    """
    if not isinstance(problem, str) or not _PROBLEM.match(problem):
        raise ValueError("problem must be 1-32 lower-case letters, digits, '_' or '-' (no path characters), "
                         f"e.g. return. Received: problem={problem!r}")
    return problem


class StoreError(ValueError):
    """A requested version is missing or incomplete."""


def default_models_dir() -> Path:
    """``ATB_MODELS_DIR``, else ``src/ml/models`` in a checkout, else ``~/.atb/models``."""
    if os.environ.get("ATB_MODELS_DIR"):
        return Path(os.environ["ATB_MODELS_DIR"])
    package_models = Path(__file__).resolve().parents[1] / "models"
    if (package_models.parents[2] / "pyproject.toml").is_file():
        return package_models
    return Path.home() / ".atb" / "models"


class ModelStore:
    """Versioned model directories under ``root``.

    Example:
        >>> store = ModelStore("/tmp/models")
        >>> with store.new_version("BTCUSDT", "return") as staging:  # doctest: +SKIP
        ...     (staging / "metadata.json").write_text("{}")
        >>> store.latest("BTCUSDT", "return")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_models_dir()

    def target_dir(self, symbol: str, target: str) -> Path:
        return self.root / check_symbol(symbol) / check_problem_key(target)

    def problems(self, symbol: str) -> list[str]:
        """Problem keys stored for a name, sorted."""
        folder = self.root / check_symbol(symbol)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and _PROBLEM.match(p.name))

    def versions(self, symbol: str, target: str) -> list[str]:
        """Complete versions, oldest first (hidden staging folders are not versions)."""
        folder = self.target_dir(symbol, target)
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and _VERSION.match(p.name)]
        return sorted(found, key=lambda name: int(_VERSION.match(name).group(1)))

    def _next_name(self, folder: Path, now: datetime) -> str:
        numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION.match(p.name))] if folder.is_dir() else []
        return f"{now:%Y-%m-%d_%H}h_v{max(numbers, default=0) + 1}"

    @contextlib.contextmanager
    def new_version(self, symbol: str, target: str, now: datetime | None = None) -> Iterator[Path]:
        """Yields a staging folder; on clean exit it becomes the next version and ``latest``.

        On any exception (KeyboardInterrupt included) the staging folder is deleted.
        The final name is available afterwards as ``store.last_committed``.
        """
        folder = self.target_dir(symbol, target)
        created = [p for p in (folder, folder.parent, self.root) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a stored version is meant to be shared
        try:
            yield staging
            self.last_committed = self._commit(folder, staging, now or datetime.now(UTC))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            for directory in created:  # innermost first; only folders this call made, only if empty
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise

    def _commit(self, folder: Path, staging: Path, now: datetime) -> Path:
        missing = [name for name in REQUIRED_FILES if not (staging / name).is_file()]
        if not any((staging / name).is_file() for name in MODEL_FILES):
            missing.append(" or ".join(MODEL_FILES))
        if missing:
            raise StoreError(f"Refusing to store an incomplete version: missing {missing}")
        for path in staging.iterdir():
            os.chmod(path, 0o644)
        for _ in range(100):  # another writer may take the same number between listing and renaming
            final = folder / self._next_name(folder, now)
            try:
                os.rename(staging, final)  # atomic; fails if `final` exists and is not empty
                break
            except OSError:
                if not final.exists():
                    raise
        else:
            raise StoreError(f"Could not find a free version name in {folder}")
        self._point_latest(folder, final.name)
        return final

    def _point_latest(self, folder: Path, name: str) -> None:
        link, tmp = folder / LATEST, folder / f".{LATEST}-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.symlink(name, tmp)
        except OSError:  # no symlinks (some Windows set-ups): an atomically replaced text file
            tmp.write_text(name + "\n")
        os.replace(tmp, link)

    def latest(self, symbol: str, target: str) -> str | None:
        folder = self.target_dir(symbol, target)
        link = folder / LATEST
        if link.is_symlink():
            return os.readlink(link)
        if link.is_file():
            return link.read_text().strip()
        return None

    def resolve(self, symbol: str, target: str, version: str | None = None) -> Path:
        """The folder of ``version`` (default: latest), checked to be complete.

        Raises:
            StoreError: no such version, or files missing / unreadable metadata.
        """
        folder = self.target_dir(symbol, target)
        name = version or self.latest(symbol, target)
        if name is None:
            raise StoreError(f"No stored model for {check_symbol(symbol)} ({target}) in {self.root}. "
                             f"Train one with: atb train model {check_symbol(symbol)} --model-type tcn")
        if not _VERSION.match(name):
            raise StoreError(f"Version names look like 2024-01-31_14h_v3. Received: version={name!r}")
        path = folder / name
        if not path.is_dir():
            known = ", ".join(self.versions(symbol, target)) or "none"
            raise StoreError(f"Version {name!r} not found for {check_symbol(symbol)} ({target}). Stored: {known}")
        missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
        if not any((path / f).is_file() for f in MODEL_FILES):
            missing.append("a model file")
        if missing:
            raise StoreError(f"Version {name!r} is incomplete or corrupt: missing {', '.join(missing)}")
        for json_file in ("metadata.json", "feature_schema.json"):
            try:
                json.loads((path / json_file).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise StoreError(f"Version {name!r} is corrupt: {json_file} is not valid JSON") from None
        return path

    def find(self, symbol: str, version: str | None = None, target: str | None = None) -> Path:
        """Like :meth:`resolve` over one or all targets: the named version, or the newest ``latest``.

        Raises:
            StoreError: nothing stored, or no such version (listing what is stored).
        """
        targets = [target] if target else self.problems(symbol)
        if version is not None:
            if not _VERSION.match(version):
                raise StoreError(f"Version names look like 2024-01-31_14h_v3. Received: version={version!r}")
            for name in targets:
                if (self.target_dir(symbol, name) / version).is_dir():
                    return self.resolve(symbol, name, version)
            stored = ", ".join(f"{name}/{v}" for name in targets for v in self.versions(symbol, name)) or "none"
            raise StoreError(f"Version {version!r} not found for {check_symbol(symbol)}. Stored: {stored}")
        newest = [self.resolve(symbol, name) for name in targets if self.latest(symbol, name)]
        if not newest:
            return self.resolve(symbol, targets[0] if targets else "return")  # raises "No stored model ..."
        return max(newest, key=lambda path: (path / "metadata.json").stat().st_mtime)

    def names_trained_on(self, symbol: str, target: str | None = None) -> list[str]:
        """Store names of several-symbol models whose latest version was trained on ``symbol``, newest first.

        Example:
            >>> ModelStore(root).names_trained_on("ETHUSDT")  # doctest: +SKIP
            ['BTCUSDT-ETHUSDT']
        """
        symbol = check_symbol(symbol)
        found = []
        if not self.root.is_dir():
            return []
        for folder in self.root.iterdir():
            if not folder.is_dir() or folder.name == symbol:
                continue
            for name in [target] if target else self.problems(folder.name):
                version = self.latest(folder.name, name)
                meta_file = folder / name / str(version) / "metadata.json"
                try:
                    config = json.loads(meta_file.read_text()).get("config", {}) if version else {}
                except (OSError, json.JSONDecodeError):
                    continue
                if symbol in config.get("symbols", ()) or (config.get("symbols") and config.get("symbol") == symbol):
                    found.append((meta_file.stat().st_mtime, folder.name))
        return [name for _, name in sorted(set(found), reverse=True)]

    def list(self, symbol: str | None = None) -> list[dict]:
        """Every complete version with its key metrics, for ``atb models list``."""
        if not self.root.is_dir():
            return []
        symbols = [check_symbol(symbol)] if symbol else sorted(p.name for p in self.root.iterdir() if p.is_dir())
        rows = []
        for sym in symbols:
            for target in self.problems(sym):
                latest = self.latest(sym, target)
                for name in self.versions(sym, target):
                    try:
                        meta = json.loads((self.root / sym / target / name / "metadata.json").read_text())
                    except (OSError, json.JSONDecodeError):
                        continue
                    rows.append({"symbol": sym, "target": target, "version": name, "latest": name == latest,
                                 "model_type": meta.get("config", {}).get("model_type"),
                                 "variant": meta.get("config", {}).get("variant"),
                                 "problem": meta.get("problem", {"type": target}),
                                 "metrics": meta.get("summary", {})})
        return rows
