"""Resumable training: a killed run continues from its last finished epoch, with its early stopping, learning-rate
schedule, curriculum phase and history intact; a changed configuration is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ml.cli import main
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.fitting.resume import RESUME_DIR, backup_folder, finished_epochs, plan_resume

ARGS = ["train", "model", "BTCUSDT", "--model-type", "lstm", "--variant", "tiny", "--days", "150",
        "--sequence-length", "24", "--batch-size", "32", "--epochs", "4", "--patience", "5", "--resume"]


class Interrupt(Exception):
    pass


def _interrupting(at_epoch: int):
    import keras

    class InterruptAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == at_epoch:
                raise Interrupt(f"killed before epoch {epoch + 1}")

    return InterruptAt()


def _toy(groups: bool = False):
    from ml.training_pipeline.models.kinds.base import FitData

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8, 3)).astype("float32")
    y = (x[:, -1, :1] * 0.5 + 0.1 * rng.standard_normal((256, 1))).astype("float32")
    g = np.where(np.arange(256) % 2 == 0, "a", "b") if groups else None
    return FitData({"inputs": x[:192]}, y[:192], groups=None if g is None else g[:192]), FitData({"inputs": x[192:]}, y[192:])


def _model():
    from ml.training_pipeline.models import create_model

    return create_model("lstm", (8, 3), variant="tiny")


@pytest.mark.parametrize("phases", [None, "a:2,all:3"])
def test_an_interrupted_fit_resumes_at_the_next_epoch_with_its_counters(tmp_path, phases):
    from ml.training_pipeline.fitting.curriculum import check_phases
    from ml.training_pipeline.fitting.resume import ResumePlan
    from ml.training_pipeline.models.kinds.base import FitSettings
    from ml.training_pipeline.models.kinds.keras_kind import KerasKind

    kind = KerasKind()
    train, validation = _toy(groups=phases is not None)
    parsed = check_phases(phases, ["a", "b"]) if phases else None
    settings = dict(epochs=5, batch_size=32, patience=3, seed=1, phases=parsed)
    plan = ResumePlan(tmp_path / "backup", 0, {"run": 1})
    plan.begin()
    with pytest.raises(Interrupt):
        kind.fit(_model(), train, validation, FitSettings(**settings, resume=plan, callbacks=[_interrupting(3)]))
    assert finished_epochs(plan.folder) == 3
    state = json.loads((plan.folder / "callback_state.json").read_text())
    early_stopping_at_3 = state["snapshots"][2][0]
    model = _model()
    resumed = ResumePlan(plan.folder, 3, {"run": 1})
    history = kind.fit(model, train, validation, FitSettings(**settings, resume=resumed))
    # one history of all five epochs: three from the backup, two trained now
    assert len(history["loss"]) == 5 and all(v is not None for v in history["loss"])
    assert history["loss"][:3] == [row["loss"] for row in state["rows"]]
    state = json.loads((plan.folder / "callback_state.json").read_text())
    assert len(state["snapshots"]) == 5
    # early stopping went on counting from the backup's best, not from scratch
    assert state["snapshots"][4][0]["best"] <= early_stopping_at_3["best"]
    if phases:
        assert history["phase"] == [1, 1, 2, 2, 2] and history["phase_label"][:2] == ["a", "a"]


def test_early_stopping_that_had_ended_the_run_is_not_undone(tmp_path):
    """A run killed after early stopping fired (while exporting, say) trains no further when resumed."""
    import keras

    from ml.training_pipeline.fitting.resume import ResumePlan, resumable_backup

    train, validation = _toy()
    plan = ResumePlan(tmp_path / "backup", 0, {})
    plan.begin()
    model = _model()
    early = keras.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    never_better = type("Worse", (keras.callbacks.Callback,), {
        "on_epoch_end": lambda self, epoch, logs: logs.update(val_loss=float(epoch))})()
    model.fit(train.inputs["inputs"], train.y, validation_data=(validation.inputs["inputs"], validation.y), epochs=6,
              verbose=0, callbacks=[never_better, early, resumable_backup(plan, [early])])
    assert early.stopped_epoch == 1 and finished_epochs(plan.folder) == 2
    again = keras.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    backup = resumable_backup(plan, [again])
    history = _model().fit(train.inputs["inputs"], train.y, epochs=6, verbose=0, callbacks=[again, backup])
    assert history.history == {} and again.stopped_epoch == 1 and again.best_epoch == 0
    assert backup.merged_history({})["val_loss"] == [0.0, 1.0]


def test_resume_with_a_changed_configuration_is_refused_naming_the_difference(tmp_path, capsys):
    config = TrainingConfig(symbol="BTCUSDT", model_type="lstm", variant="tiny", epochs=5, models_dir=str(tmp_path))
    plan = plan_resume(tmp_path, config, "price")
    assert plan.folder == tmp_path / RESUME_DIR / "BTCUSDT" / "price" / "lstm" and plan.finished_epochs == 0
    assert not plan.folder.exists()  # nothing is written before training starts
    plan.begin()
    (plan.folder / "training_metadata.json").write_text(json.dumps({"epoch": 2}))
    assert finished_epochs(plan.folder) == 2  # (a real backup also holds weights: plan_resume checks them)
    code = main(["train", "model", "BTCUSDT", "--model-type", "lstm", "--variant", "tiny", "--epochs", "6",
                 "--batch-size", "64", "--models-dir", str(tmp_path), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--resume: the backup in" in err and "batch_size 128 -> 64; epochs 5 -> 6" in err
    assert not (tmp_path / "BTCUSDT" / "price").exists()  # nothing stored
    code = main(["train", "model", "BTCUSDT", "--model-type", "lightgbm", "--models-dir", str(tmp_path), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "--resume needs a model trained epoch by epoch" in err and "'lightgbm'" in err


@pytest.mark.slow  # ~20 s in a subprocess; the in-process resume tests above run the same path by default
def test_a_training_killed_after_its_second_epoch_continues_at_the_third(tmp_path):
    """SIGKILL (no clean-up at all) after epoch 2, then the same command: it says so, trains epochs 3-4 only and
    stores one complete, verified version; its backup is gone."""
    models = tmp_path / "models"
    command = [sys.executable, "-m", "ml.cli", *ARGS, "--models-dir", str(models)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    config = TrainingConfig(symbol="BTCUSDT", model_type="lstm", epochs=4)
    folder = backup_folder(models, config, "price")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 240
    while finished_epochs(folder) < 2 and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first_out = first.communicate()[0]
    assert first.returncode == -signal.SIGKILL, first_out[-2000:]
    assert finished_epochs(folder) == 2, "the kill came later than the end of epoch 2"
    assert not (models / "BTCUSDT" / "price").exists() or not any((models / "BTCUSDT" / "price").glob("2*"))

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    out = second.stdout
    assert "2 epoch(s) finished, continuing at epoch 3" in out
    # the epochs' end lines (a slow machine also prints lines inside an epoch, "epoch 3/4: batches ...")
    epochs = [line.split(":")[0] for line in out.splitlines() if line.startswith("epoch ") and " s/epoch," in line]
    assert epochs == ["epoch 3/4", "epoch 4/4"]
    version = (models / "BTCUSDT" / "price" / "latest").resolve()
    meta = json.loads((version / "metadata.json").read_text())
    assert meta["resumed_from_epoch"] == 2 and len(meta["history"]["loss"]) == 4
    assert all(isinstance(v, float) for v in meta["history"]["val_loss"])
    assert main(["models", "verify", "--models-dir", str(models)]) == 0
    assert not (models / RESUME_DIR).exists()


def test_a_corrupt_backup_is_announced_or_refused_before_training(tmp_path):
    import h5py

    config = TrainingConfig(symbol="BTCUSDT", model_type="lstm", variant="tiny", days=30, epochs=3)
    plan = plan_resume(tmp_path, config, "price")
    plan.begin()
    folder = plan.folder
    with h5py.File(folder / "latest.weights.h5.bkp", "w") as handle:  # epoch 1's weights, intact
        handle.create_dataset("w", data=np.ones(3))
    (folder / "latest.weights.h5").write_bytes((folder / "latest.weights.h5.bkp").read_bytes()[:100])  # truncated
    (folder / "training_metadata.json").write_text('{"epoch": 2}')
    (folder / "training_metadata.json.bkp").write_text('{"epoch": 1}')
    (folder / "callback_state.json").write_text(json.dumps({"rows": [{"loss": 1.0}, {"loss": 0.9}],
                                                            "snapshots": [[], []]}))
    resumed = plan_resume(tmp_path, config, "price")
    assert resumed.finished_epochs == 1  # what Keras will really continue from, not the unreadable epoch 2
    assert "continuing at epoch 2 (the newest backup, of epoch 2, is unreadable" in resumed.describe()
    (folder / "callback_state.json").write_text('{"rows": [{"loss": 1.0}')  # truncated
    with pytest.raises(ValueError, match=r"corrupt: callback_state.json is unreadable or lacks epochs 1..1 .* delete"):
        plan_resume(tmp_path, config, "price")
    (folder / "latest.weights.h5.bkp").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="latest.weights.h5 is unreadable .* and no readable previous copy exists"):
        plan_resume(tmp_path, config, "price")
