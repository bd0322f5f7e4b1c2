"""MLflow tracking against a real local tracking store (SQLite), not a mock: params, per-epoch and final metrics
with baselines, the version's files and a registered model; an unusable store fails before training."""

from __future__ import annotations

import sys

import pytest

from ml.cli import main
from ml.training_pipeline.fitting.tracking import MlflowTracker

mlflow = pytest.importorskip("mlflow", reason="the [mlflow] extra (installed with [dev])")

TRAIN = ["train", "model", "BTCUSDT", "--model-type", "lstm", "--variant", "tiny", "--days", "60", "--epochs", "3",
         "--sequence-length", "24", "--batch-size", "64", "--quiet"]


def test_a_run_appears_in_a_local_tracking_store(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    models = tmp_path / "models"
    assert main([*TRAIN, "--models-dir", str(models), "--mlflow", uri, "--register-model", "btc-lstm"]) == 0
    capsys.readouterr()
    client = mlflow.MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("atb-BTCUSDT-price").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "BTCUSDT lstm (tiny)"
    params = run.data.params
    assert params["config.model_type"] == "lstm" and params["config.batch_size"] == "64"
    assert any(name.startswith("model.") for name in params)  # the model's resolved hyperparameters
    assert params["rows.train_windows"] == "903"
    # per-epoch series at their epochs, and the final metrics next to the baselines on the same rows
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1, 2]  # logged live after each epoch, and not again at the end
    assert all(m.timestamp > 0 for m in history)
    metrics = run.data.metrics
    assert {"test.model.rmse", "test.persistence.rmse", "test.moving_average.rmse", "test.skill"} <= set(metrics)
    version = (models / "BTCUSDT" / "price" / "latest").resolve()
    import json

    meta = json.loads((version / "metadata.json").read_text())
    assert metrics["test.model.rmse"] == pytest.approx(meta["metrics"]["model"]["rmse"])
    assert meta["tracking"] == {"mlflow_run_id": run.info.run_id, "mlflow_uri": uri}
    files = {f.path for f in client.list_artifacts(run.info.run_id, "model_version")}
    assert {"model_version/model.keras", "model_version/model.onnx", "model_version/metadata.json",
            "model_version/SHA256SUMS", "model_version/predictions.png"} <= files
    [registered] = client.search_model_versions("name='btc-lstm'")
    assert registered.run_id == run.info.run_id and str(registered.version) == "1"
    assert registered.tags["atb.version_dir"] == str(version)


def test_without_mlflow_nothing_is_tracked(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert MlflowTracker.from_settings(None, None, None, "atb") is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    assert MlflowTracker.from_settings(None, None, None, "atb").uri == "sqlite:///x.db"
    assert MlflowTracker.from_settings(False, None, None, "atb") is None  # --no-mlflow


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--mlflow", "http://127.0.0.1:9"], "The MLflow tracking store 'http://127.0.0.1:9' cannot be used: no "
                                         "tracking server answers at that address"),
    (["--register-model", "btc"], "register_model and experiment need MLflow tracking"),
])
def test_an_unusable_tracking_store_fails_before_training(tmp_path, monkeypatch, capsys, extra, fragment):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main([*TRAIN, "--models-dir", str(tmp_path / "models"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "models").exists()


def test_missing_mlflow_package_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    code = main([*TRAIN, "--models-dir", str(tmp_path / "models"), "--mlflow", f"sqlite:///{tmp_path / 'm.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'atb-ml[mlflow]'" in err and not (tmp_path / "models").exists()
