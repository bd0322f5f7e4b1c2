"""Resumable training: a run started with ``resume=True`` (``atb train ... --resume``) keeps a backup of its
training state after every epoch; the same command after a kill continues from the last finished epoch.

The backup is Keras' ``BackupAndRestore`` (weights, optimizer state with its learning rate, epoch), extended
with what Keras does not keep: the early-stopping and learning-rate-schedule counters, early stopping's best
weights and the per-epoch history, so that a resumed run stops, lowers its learning rate and reports exactly as
the uninterrupted run would. Curriculum phases already finished are skipped.

The backup lives in ``<store root>/.resume/<name>/<problem>/<model type>/`` next to the run's configuration;
``--resume`` with a different configuration is refused, naming what differs. A run that stored its version
removes its backup.

Example:
    >>> from ml.training_pipeline.pipeline import train
    >>> train(config, resume=True)  # killed at epoch 7; the same call continues at epoch 8  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESUME_DIR = ".resume"
RUN_FILE = "run.json"
STATE_FILE = "callback_state.json"
BEST_WEIGHTS_FILE = "best_weights.npz"
KERAS_METADATA_FILE = "training_metadata.json"  # written by keras.callbacks.BackupAndRestore
KERAS_WEIGHTS_FILE = "latest.weights.h5"  # its weights; with double_checkpoint the previous epoch's end in ".bkp"
PREVIOUS = ".bkp"
IGNORED_SETTINGS = ("models_dir",)
"""Config fields that do not change the training (the store root is where the backup is, not what it holds)."""


def _write_json(path: Path, payload: Any) -> None:
    """Writes atomically: a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)


def _differences(before: dict, now: dict) -> list[str]:
    keys = sorted(set(before) | set(now))
    return [f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in keys if before.get(k) != now.get(k)]


@dataclass(frozen=True)
class ResumePlan:
    """Where a resumable run keeps its backup, and how far the previous attempt got.

    Attributes:
        folder: the backup folder.
        finished_epochs: epochs the backup holds (0: a fresh start).
    """

    folder: Path
    finished_epochs: int
    settings: dict | None = None
    note: str | None = None
    """Said before training when the newest backup was unreadable and the previous one is used."""

    def begin(self) -> None:
        """Creates the backup folder with the run's configuration (called when training starts)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.settings is not None and not (self.folder / RUN_FILE).is_file():
            _write_json(self.folder / RUN_FILE, self.settings)

    def describe(self) -> str:
        """The log line saying whether the run resumes."""
        if self.finished_epochs:
            return (f"resume: found a backup of this run in {self.folder}: {self.finished_epochs} epoch(s) finished, "
                    f"continuing at epoch {self.finished_epochs + 1}" + (f" ({self.note})" if self.note else ""))
        return f"resume: no backup of this run yet; backing up the training state to {self.folder} after every epoch"

    def remove(self) -> None:
        """Deletes the backup (the run's version is stored) and the folders above it that it leaves empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        parent = self.folder.parent
        while RESUME_DIR in parent.parts:
            try:
                parent.rmdir()
            except OSError:  # not empty: another run's backup
                break
            if parent.name == RESUME_DIR:
                break
            parent = parent.parent


def backup_folder(store_root: str | Path, config, problem_key: str, worker: int | None = None) -> Path:
    """``<store root>/.resume/<name>/<problem>/<model type>[/worker-<i>]``: one backup per run identity."""
    folder = Path(store_root) / RESUME_DIR / config.store_name / problem_key / config.model_type
    return folder / f"worker-{worker}" if worker is not None else folder


def finished_epochs(folder: Path) -> int:
    """Epochs the Keras backup in ``folder`` holds (0 when there is none)."""
    try:
        return int(json.loads((folder / KERAS_METADATA_FILE).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def plan_resume(store_root: str | Path, config, problem_key: str, worker: int | None = None) -> ResumePlan:
    """The backup of ``config``'s run, checked against ``config`` (nothing is written: see :meth:`ResumePlan.begin`).

    Raises:
        ValueError: the backup was written by a run with another configuration (the message lists what differs).
    """
    folder = backup_folder(store_root, config, problem_key, worker)
    settings = {k: v for k, v in config.to_dict().items() if k not in IGNORED_SETTINGS}
    settings = json.loads(json.dumps(settings, default=str))  # tuples and the like compare as they are stored
    run_file = folder / RUN_FILE
    if run_file.is_file():
        try:
            before = json.loads(run_file.read_text())
        except ValueError:
            before = None
        if before != settings:
            changed = _differences(before or {}, settings) if isinstance(before, dict) else ["unreadable run.json"]
            raise ValueError(f"--resume: the backup in {folder} was written with another configuration "
                             f"({'; '.join(changed)}); rerun with the same settings, or delete that folder to start "
                             "over")
        epochs, note = _usable_epochs(folder)
        return ResumePlan(folder, epochs, settings, note)
    return ResumePlan(folder, 0, settings)


def _unreadable(weights: Path) -> str | None:
    """Why an HDF5 weights file cannot be read (``None``: it can): HDF5 refuses a truncated or garbled file on open."""
    import h5py

    try:
        with h5py.File(weights, "r") as handle:
            handle.visit(lambda name: None)
    except (OSError, ValueError, RuntimeError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return text[:120]
    return None


def _usable_epochs(folder: Path) -> tuple[int, str | None]:
    """The finished epochs the backup can really continue from, and a note when that is the previous backup.

    Keras falls back to the previous epoch's copy when the newest weights cannot be loaded (a kill while they were
    written); this says so up front instead of announcing an epoch the run will not continue from.

    Raises:
        ValueError: no readable weights, or a callback state that lacks the finished epochs' history and counters.
    """
    epochs = finished_epochs(folder)
    if not epochs:
        return 0, None
    note = None
    broken = _unreadable(folder / KERAS_WEIGHTS_FILE)
    if broken:
        previous = folder / (KERAS_WEIGHTS_FILE + PREVIOUS)
        if not previous.is_file() or _unreadable(previous):
            raise ValueError(f"--resume: the backup in {folder} is corrupt: {KERAS_WEIGHTS_FILE} is unreadable ({broken}) "
                             "and no readable previous copy exists; delete that folder to start over")
        try:
            before = int(json.loads((folder / (KERAS_METADATA_FILE + PREVIOUS)).read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            before = 0
        note = (f"the newest backup, of epoch {epochs}, is unreadable ({broken}): continuing from the previous one, "
                f"of epoch {before}")
        epochs = before
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        complete = len(state["rows"]) >= epochs and len(state["snapshots"]) >= epochs
    except (OSError, ValueError, KeyError, TypeError):
        complete = False
    if epochs and not complete:
        raise ValueError(f"--resume: the backup in {folder} is corrupt: {STATE_FILE} is unreadable or lacks epochs "
                         f"1..{epochs} (the history and the early-stopping counters would be lost); delete that folder "
                         "to start over")
    return epochs, note


_COUNTERS = {"EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
             "ReduceLROnPlateau": ("wait", "best", "cooldown_counter")}
"""The mutable state of the callbacks the pipeline uses (Keras resets it in ``on_train_begin``)."""


def resumable_backup(plan: ResumePlan, stateful_callbacks: list):
    """A ``keras.callbacks.BackupAndRestore`` that also restores ``stateful_callbacks`` and the history.

    Put it after ``stateful_callbacks`` in the callback list: it restores their counters after they reset them,
    and saves them after they updated them.

    Args:
        plan: from :func:`plan_resume`.
        stateful_callbacks: the run's early stopping and learning-rate schedule.
    """
    import keras
    import numpy as np

    folder = plan.folder

    class ResumableBackup(keras.callbacks.BackupAndRestore):
        """Keras' backup (weights, optimizer, epoch) plus callback counters, best weights and history."""

        def __init__(self):
            # double_checkpoint: a kill while the weights file is written falls back to the previous epoch
            super().__init__(str(folder), save_freq="epoch", double_checkpoint=True, delete_checkpoint=False)
            self.saved_rows: list[dict] = []
            self.epochs_seen = 0
            self.resumed_at = 0
            self._loaded = False
            self._state: dict = {"rows": [], "snapshots": []}

        def _snapshot(self) -> list[dict]:
            return [{name: _plain(getattr(callback, name, None)) for name in _COUNTERS.get(type(callback).__name__, ())}
                    for callback in stateful_callbacks]

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)  # weights, optimizer and model._initial_epoch
            epoch = finished_epochs(folder)
            try:
                state = json.loads((folder / STATE_FILE).read_text())
            except (OSError, ValueError):
                state = {"rows": [], "snapshots": []}
            self._state = state
            if not self._loaded:  # the first fit of the run (curriculum runs call fit once per phase)
                self.resumed_at = epoch
                self.saved_rows = state["rows"][:epoch]
                self._loaded = True
            if not epoch:
                return
            snapshot = state["snapshots"][epoch - 1] if len(state["snapshots"]) >= epoch else None
            for callback, values in zip(stateful_callbacks, snapshot or [], strict=False):
                for name, value in values.items():
                    setattr(callback, name, value)
            best_file = folder / BEST_WEIGHTS_FILE
            early = [c for c in stateful_callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
            if early and best_file.is_file():
                with np.load(best_file) as stored:
                    if int(stored["epoch"]) == early[0].best_epoch:
                        early[0].best_weights = [stored[f"w{i}"] for i in range(int(stored["count"]))]
            if early and early[0].stopped_epoch > 0:  # early stopping had ended the run: train no further
                self.model._initial_epoch = self.params.get("epochs", epoch)

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_seen += 1
            state = self._state
            state["rows"] = state["rows"][:epoch] + [{k: _plain(v) for k, v in (logs or {}).items()}]
            state["snapshots"] = state["snapshots"][:epoch] + [self._snapshot()]
            early = [c for c in stateful_callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
            if early and early[0].best_weights is not None and early[0].best_epoch == epoch:
                weights = {f"w{i}": w for i, w in enumerate(early[0].best_weights)}
                tmp = folder / f".{BEST_WEIGHTS_FILE}.tmp.npz"
                np.savez(tmp, epoch=epoch, count=len(early[0].best_weights), **weights)
                os.replace(tmp, folder / BEST_WEIGHTS_FILE)
            # the state first, then Keras' weights: a kill in between leaves the state one epoch ahead, which
            # on_train_begin reads at the epoch the weights hold
            _write_json(folder / STATE_FILE, state)
            super().on_epoch_end(epoch, logs)

        def merged_history(self, history: dict[str, list]) -> dict[str, list]:
            """This run's history with the epochs before the resume put back in front."""
            if not self.resumed_at:
                return history
            total = self.resumed_at + self.epochs_seen
            merged = {}
            for key in {*history, *(k for row in self.saved_rows for k in row)}:
                values = list(history.get(key, []))
                values = [None] * (total - len(values)) + values
                for i, row in enumerate(self.saved_rows):
                    if values[i] is None and key in row:
                        values[i] = row[key]
                merged[key] = values
            return merged

    return ResumableBackup()


def _plain(value: Any) -> Any:
    """A JSON-friendly number (NumPy and TensorFlow scalars, infinities kept as floats)."""
    try:
        return float(value) if not isinstance(value, (int, bool, type(None))) else value
    except (TypeError, ValueError):
        return None
