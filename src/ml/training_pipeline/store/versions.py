"""The versioned model store on disk.

Layout: ``<root>/<NAME>/<problem>/<YYYY-MM-DD_HHh_vN>/`` where NAME is a symbol or a data-set
name and problem is the problem's key (``return``, ``direction``, ``volatility``, or a user
problem's name), with the native model file (``model.keras``, ``model.txt``), ``model.onnx``
(unless the model cannot be exported, which its metadata says), ``metadata.json``,
``feature_schema.json``, plots and ``SHA256SUMS``; ``<root>/<NAME>/<problem>/latest`` points at the newest
complete version. Every file's sha256 is recorded on commit and checked on every load
(:mod:`ml.training_pipeline.store.integrity`): a modified or truncated file is refused. Files and folders are readable by other users (0644 / 0755).

A version is written into a hidden temporary folder and renamed into place in one step,
so a crash or Ctrl-C never leaves a half version; an existing version is never
overwritten; ``latest`` is a symlink replaced atomically (a one-line text file where
symlinks are not available).

A staging folder records its owner (pid and host) in ``.owner``; one whose owner is gone (a run killed
with SIGKILL, a power cut) is removed by the next write to the same folder.

Several models of one problem can live side by side (a 1h TCN and a 4h LightGBM): a model's
identity is (name, problem, timeframe, model type), and :meth:`ModelStore.find` picks the newest
version of the identity asked for, refusing to guess when the request matches several.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ml.training_pipeline.common.markets import check_symbol
from ml.training_pipeline.store.integrity import Verification, seal, verify_version

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}h_v(\d+)$")
_PROBLEM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LATEST = "latest"
PROBLEM_FOLDER_ALIASES: dict[str, tuple[str, ...]] = {"return": ("price", "return"), "price": ("price", "return")}
"""Target name -> the store folders that hold its models, newest naming first."""
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


class NoStoredModel(StoreError):
    """Nothing stored matches the request (as opposed to several models matching it)."""


class CorruptVersion(StoreError):
    """A version's metadata cannot be read or has the wrong shape: listed as CORRUPT, never chosen."""


def read_metadata(version_folder: str | os.PathLike) -> dict:
    """A version's ``metadata.json``, checked to have the shape every command reads: an object whose ``config`` is
    an object naming the ``model_type``, whose ``problem`` and ``data`` are objects (or absent) and whose ``files``
    record is an object (or absent). The one reader of stored metadata, so a malformed version is reported the
    same way everywhere and never crashes a command.

    Raises:
        CorruptVersion: missing, not JSON, not UTF-8, or of the wrong shape (the message says which).
    """
    path = Path(version_folder) / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise CorruptVersion("metadata.json missing") from None
    except (OSError, ValueError):
        raise CorruptVersion("metadata.json is not valid JSON (or not UTF-8)") from None
    if not isinstance(metadata, dict):
        raise CorruptVersion(f"metadata.json is a JSON {type(metadata).__name__}, not an object")
    config = metadata.get("config")
    if not isinstance(config, dict) or not all(isinstance(config.get(k), str) for k in ("model_type", "symbol")):
        raise CorruptVersion("metadata.json has no config object naming the model_type and symbol")
    for key in ("problem", "data", "files", "summary", "metrics"):
        if metadata.get(key) is not None and not isinstance(metadata[key], dict):
            raise CorruptVersion(f"metadata.json's {key!r} is a JSON {type(metadata[key]).__name__}, not an object")
    return metadata


OWNER_FILE = ".owner"
MIN_FREE_BYTES = 64 * 2**20
"""Free space a store must have before a run trains (the largest default version is ~20 MiB: model, ONNX, plots)."""
STALE_WITHOUT_OWNER_S = 3600


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def identity(metadata: dict) -> tuple[str, str, str]:
    """``(problem, timeframe, model type)`` of a stored version, from its metadata (:func:`read_metadata`'s)."""
    config = metadata.get("config") or {}
    problem = (metadata.get("problem") or {}).get("name") or config.get("target") or "?"
    # a problem without bars (log windows, arrays) records timeframe None in its data: shown as "-"
    data = metadata.get("data") or {}
    timeframe = data["timeframe"] if "timeframe" in data else config.get("timeframe")
    return str(problem), str(timeframe or "-"), str(config.get("model_type") or "?")


def default_models_dir() -> Path:
    """``ATB_MODELS_DIR``, else ``src/ml/models`` in a checkout, else ``~/.atb/models``."""
    if os.environ.get("ATB_MODELS_DIR"):
        return Path(os.environ["ATB_MODELS_DIR"])
    package_models = Path(__file__).resolve().parents[2] / "models"  # src/ml/models (this file: ml/training_pipeline/store/)
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

    def check_writable(self) -> None:
        """Raises :class:`StoreError` now (before any data is read) when versions could not be written.

        The root, or its nearest existing parent, must be a folder where a folder can really be made (one is made
        and removed at once: permission bits do not tell, e.g. under ``/proc`` or on a read-only mount) with at least
        :data:`MIN_FREE_BYTES` free.
        """
        probe = self.root
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            raise StoreError(f"The model store {str(self.root)!r} cannot be used: {str(probe)!r} is a file, not a folder. "
                             "Pass a folder to --models-dir")
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".atb-probe-", dir=probe))
        except OSError as error:
            raise StoreError(f"The model store {str(self.root)!r} is not writable ({str(probe)!r} refuses a new folder: "
                             f"{error.strerror}). Pass a writable folder to --models-dir") from None
        free = shutil.disk_usage(probe).free
        if free < MIN_FREE_BYTES:
            raise StoreError(f"The model store {str(self.root)!r} has {free / 2**20:.0f} MiB free; a version needs up to "
                             f"{MIN_FREE_BYTES / 2**20:.0f} MiB. Free some space or pass another --models-dir")

    def clean_stale(self, folder: Path) -> list[str]:
        """Removes staging folders in ``folder`` whose owner process is gone; returns their names.

        A folder with an owner file is stale when that pid no longer runs on this host; one without
        (written before owners were recorded, or killed before writing it) when it is over an hour old.
        """
        removed = []
        if not folder.is_dir():
            return removed
        for staging in folder.glob(".staging-*"):
            if not staging.is_dir():
                continue
            try:
                owner = json.loads((staging / OWNER_FILE).read_text())
                stale = owner.get("host") == socket.gethostname() and not _alive(int(owner["pid"]))
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    stale = time.time() - staging.stat().st_mtime > STALE_WITHOUT_OWNER_S
            if stale:
                shutil.rmtree(staging, ignore_errors=True)
                removed.append(staging.name)
        return removed

    def target_dir(self, symbol: str, target: str) -> Path:
        return self.root / check_symbol(symbol) / check_problem_key(target)

    def problems(self, symbol: str) -> list[str]:
        """Problem keys stored for a name, sorted."""
        folder = self.root / check_symbol(symbol)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and _PROBLEM.match(p.name))

    def _folders_of(self, symbol: str, target: str) -> list[str]:
        """The problem folders a requested target may live in: the next-bar return's models are stored under
        ``price`` (the user's guide's path) and, by versions before that, under ``return``."""
        names = PROBLEM_FOLDER_ALIASES.get(target, (target,))
        present = [name for name in names if (self.root / check_symbol(symbol) / name).is_dir()]
        return present or [names[0]]

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
    def new_version(self, symbol: str, target: str, now: datetime | None = None,
                    before_commit: Callable[[], None] | None = None) -> Iterator[Path]:
        """Yields a staging folder; on clean exit it becomes the next version and ``latest``.

        On any exception (KeyboardInterrupt included) the staging folder is deleted. ``before_commit`` runs last,
        just before the rename, and may raise to refuse the version (e.g. an interrupt that was received but lost).
        The final name is available afterwards as ``store.last_committed``.
        """
        folder = self.target_dir(symbol, target)
        created = [p for p in (folder, folder.parent, self.root) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self.cleaned = self.clean_stale(folder)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a stored version is meant to be shared
        (staging / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                      "started": datetime.now(UTC).isoformat(timespec="seconds")}))
        try:
            yield staging
            if before_commit is not None:
                before_commit()
            self.last_committed = self._commit(folder, staging, now or datetime.now(UTC))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            for directory in created:  # innermost first; only folders this call made, only if empty
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise

    def _commit(self, folder: Path, staging: Path, now: datetime) -> Path:
        (staging / OWNER_FILE).unlink(missing_ok=True)
        missing = [name for name in REQUIRED_FILES if not (staging / name).is_file()]
        if not any((staging / name).is_file() for name in MODEL_FILES):
            missing.append(" or ".join(MODEL_FILES))
        if missing:
            raise StoreError(f"Refusing to store an incomplete version: missing {missing}")
        try:
            seal(staging)  # every file's sha256, checked whenever the version is loaded
        except ValueError as error:
            raise StoreError(f"Refusing to store a version whose metadata cannot record checksums: {error}") from None
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
            raise NoStoredModel(f"No stored model for {check_symbol(symbol)} ({target}) in {self.root}. "
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
        try:
            read_metadata(path)
            if not isinstance(json.loads((path / "feature_schema.json").read_text()), dict):
                raise ValueError
        except CorruptVersion as error:
            raise CorruptVersion(f"Version {name!r} is corrupt: {error}") from None
        except (ValueError, UnicodeDecodeError):
            raise CorruptVersion(f"Version {name!r} is corrupt: feature_schema.json is not a JSON object") from None
        checked = verify_version(path)
        if not checked.ok:
            raise StoreError(f"Version {name!r} of {check_symbol(symbol)} ({target}) failed verification, refusing to "
                             f"load it: {checked.summary()}. Check the store with: atb models verify")
        return path

    def verify(self, symbol: str | None = None) -> list[tuple[str, str, str, Verification]]:
        """Checks every stored version (of ``symbol``, or of every name) against its recorded checksums.

        Returns:
            ``(name, problem folder, version, Verification)`` per version, sorted.

        Example:
            >>> bad = [row for row in ModelStore(root).verify() if not row[3].ok]  # doctest: +SKIP
        """
        if not self.root.is_dir():
            return []
        names = [check_symbol(symbol)] if symbol else sorted(p.name for p in self.root.iterdir()
                                                             if p.is_dir() and not p.name.startswith("."))
        return [(name, problem, version, verify_version(self.target_dir(name, problem) / version))
                for name in names for problem in self.problems(name) for version in self.versions(name, problem)]

    def find(self, symbol: str, version: str | None = None, target: str | None = None,
             timeframe: str | None = None, model_type: str | None = None) -> Path:
        """The named version, or the newest version of the one model identity the filters leave.

        Args:
            symbol: the store name.
            version: an exact version name (the filters are then only checked).
            target: the problem key (``return``, ``volatility``...); ``None``: any.
            timeframe, model_type: narrow the choice when several models are stored.

        Raises:
            StoreError: nothing stored, no such version, or several model identities match (listing them
                and the options that choose one).
        """
        targets = self._folders_of(symbol, target) if target else self.problems(symbol)
        if version is not None:
            if not _VERSION.match(version):
                raise StoreError(f"Version names look like 2024-01-31_14h_v3. Received: version={version!r}")
            return self._find_version(symbol, version, targets, timeframe, model_type)
        newest: dict[tuple[str, str, str], tuple[tuple, str, str]] = {}
        for name in targets:
            for number, candidate in enumerate(self.versions(symbol, name)):
                try:
                    meta = read_metadata(self.target_dir(symbol, name) / candidate)
                except CorruptVersion:
                    continue  # corrupt versions are listed as such, never chosen
                key = identity(meta)
                if (timeframe and key[1] != timeframe) or (model_type and key[2] != model_type):
                    continue
                order = (meta.get("created_at", ""), number)
                if key not in newest or order > newest[key][0]:
                    newest[key] = (order, name, candidate)
        if not newest:
            wanted = ", ".join(f"{k}={v}" for k, v in (("target", target), ("timeframe", timeframe),
                                                        ("model_type", model_type)) if v)
            if wanted and any(self.versions(symbol, name) for name in targets):
                raise NoStoredModel(f"No stored model for {check_symbol(symbol)} with {wanted}. Stored: "
                                    f"{self._identities(symbol)}")
            return self.resolve(symbol, targets[0] if targets else "price")  # raises "No stored model ..."
        if len(newest) > 1:
            listing = "; ".join(f"{p} {t} {m}" for p, t, m in sorted(newest))
            raise StoreError(f"{check_symbol(symbol)} has {len(newest)} stored models ({listing}); choose one with "
                             "--target, --timeframe or --model-type (Python: target=, timeframe=, model_type=)")
        _, name, candidate = next(iter(newest.values()))
        return self.resolve(symbol, name, candidate)

    def _find_version(self, symbol: str, version: str, targets: list[str], timeframe: str | None,
                      model_type: str | None) -> Path:
        """``version`` by name: refused when the name is in several problem folders (unless ``target`` chose one) or
        when the model it names is not the ``timeframe``/``model_type`` asked for, never another model served."""
        holders = [name for name in targets if (self.target_dir(symbol, name) / version).is_dir()]
        if not holders:
            stored = ", ".join(f"{name}/{v}" for name in targets for v in self.versions(symbol, name)) or "none"
            raise NoStoredModel(f"Version {version!r} not found for {check_symbol(symbol)}. Stored: {stored}")
        described = {}
        for name in holders:
            try:
                described[name] = identity(read_metadata(self.target_dir(symbol, name) / version))
            except CorruptVersion:
                described[name] = (name, "?", "?")
        if len(holders) > 1:
            listing = "; ".join(f"{name}/{version}: {' '.join(described[name])}" for name in holders)
            raise StoreError(f"Version {version!r} names {len(holders)} models of {check_symbol(symbol)} ({listing}); "
                             "choose one with --target (Python: target=)")
        problem, bars, kind = described[holders[0]]
        for option, wanted, actual in (("model_type", model_type, kind), ("timeframe", timeframe, bars)):
            if wanted and actual != wanted:
                raise StoreError(f"Version {version!r} of {check_symbol(symbol)} is a {problem} {bars} {kind} model, not "
                                 f"{option}={wanted!r}. Drop --{option.replace('_', '-')} or give a version of that model "
                                 f"(atb models list {check_symbol(symbol)})")
        return self.resolve(symbol, holders[0], version)

    def _identities(self, symbol: str) -> str:
        found = set()
        for name in self.problems(symbol):
            for candidate in self.versions(symbol, name):
                with contextlib.suppress(CorruptVersion):
                    found.add(identity(read_metadata(self.target_dir(symbol, name) / candidate)))
        return "; ".join(f"{p} {t} {m}" for p, t, m in sorted(found)) or "none"

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
            if not folder.is_dir() or folder.name == symbol or folder.name.startswith("."):
                continue
            for name in self._folders_of(folder.name, target) if target else self.problems(folder.name):
                version = self.latest(folder.name, name)
                meta_file = folder / name / str(version) / "metadata.json"
                try:
                    config = read_metadata(meta_file.parent)["config"] if version else {}
                except CorruptVersion:
                    continue
                if symbol in config.get("symbols", ()) or (config.get("symbols") and config.get("symbol") == symbol):
                    found.append((meta_file.stat().st_mtime, folder.name))
        return [name for _, name in sorted(set(found), reverse=True)]

    def list(self, symbol: str | None = None, model_type: str | None = None,
             timeframe: str | None = None) -> list[dict]:
        """Every version with its key metrics, for ``atb models list``; a version whose metadata cannot be
        read is listed with ``corrupt`` set (and is never chosen by :meth:`find`)."""
        if not self.root.is_dir():
            return []
        symbols = [check_symbol(symbol)] if symbol else sorted(p.name for p in self.root.iterdir()
                                                                  if p.is_dir() and not p.name.startswith("."))
        rows = []
        for sym in symbols:
            for target in self.problems(sym):
                latest = self.latest(sym, target)
                for name in self.versions(sym, target):
                    row = {"symbol": sym, "target": target, "version": name, "latest": name == latest}
                    try:
                        meta = read_metadata(self.root / sym / target / name)
                    except CorruptVersion as error:
                        if not model_type and not timeframe:
                            rows.append({**row, "corrupt": str(error), "model_type": None, "variant": None,
                                         "timeframe": None, "problem": {"type": target}, "metrics": {}, "data": None})
                        continue
                    config = meta["config"]
                    bars = identity(meta)[1]
                    bars = None if bars == "-" else bars
                    if (model_type and config.get("model_type") != model_type) or (timeframe and bars != timeframe):
                        continue
                    rows.append({**row, "model_type": config.get("model_type"), "variant": config.get("variant"),
                                 "timeframe": bars, "problem": meta.get("problem") or {"type": target},
                                 "data": (meta.get("data") or {}).get("source"), "metrics": meta.get("summary") or {}})
        return rows
