"""tf.distribute training: TF_CONFIG is read as TensorFlow defines it, bad clusters fail before any data is read,
and two local workers train one model that only the chief stores, matching a single-process run."""

from __future__ import annotations

import json

import pytest

from ml.cli import main
from ml.training_pipeline.fitting.cluster import cluster_environments
from ml.training_pipeline.fitting.distribute import read_tf_config

TRAIN = ["train", "model", "BTCUSDT", "--model-type", "lstm", "--variant", "tiny", "--days", "60", "--epochs", "3",
         "--sequence-length", "24", "--batch-size", "64"]
RELATIVE_TOLERANCE = 0.02
"""Two workers vs one process, same global batch and seed, after 3 epochs: measured 0.4% apart on the validation
loss and 0.06% on the test RMSE (the replicas sum their gradients in another order; docs/distributed.md)."""


def _config(workers, task_type="worker", index=0, **cluster):
    return json.dumps({"cluster": {"worker": workers, **cluster}, "task": {"type": task_type, "index": index}})


def test_tf_config_roles():
    two = ["10.0.0.1:2222", "10.0.0.2:2222"]
    assert read_tf_config({"TF_CONFIG": _config(two, index=0)}).describe() == "worker 0 of 2 (chief)"
    role = read_tf_config({"TF_CONFIG": _config(two, index=1)})
    assert (role.is_chief, role.rank, role.workers) == (False, 1, 2)
    chief = read_tf_config({"TF_CONFIG": _config(two, "chief", 0, chief=["10.0.0.9:2222"])})
    assert chief.is_chief and chief.workers == 3 and chief.rank == 0
    worker = read_tf_config({"TF_CONFIG": _config(two, "worker", 0, chief=["10.0.0.9:2222"])})
    assert not worker.is_chief and worker.rank == 1


@pytest.mark.parametrize(("environ", "fragment"), [
    ({}, "reads the cluster from TF_CONFIG, which is not set"),
    ({"TF_CONFIG": "{cluster: [}"}, "TF_CONFIG is not valid JSON"),
    ({"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}}'}, "needs a 'cluster' and a 'task' object"),
    ({"TF_CONFIG": _config(["a:1", "b:2"], index=2)}, "task index is out of range: the cluster has 2 worker(s), so "
                                                      "the index must be 0..1. Received: index=2"),
    ({"TF_CONFIG": _config(["a:1"], index=-1)}, "must be 0..0. Received: index=-1"),
    ({"TF_CONFIG": _config(["a:1"], "ps", 0)}, "task type must be one the cluster lists (worker). Received: task type='ps'"),
    ({"TF_CONFIG": _config(["no-port"])}, "must be a non-empty list of 'host:port' strings"),
    ({"TF_CONFIG": _config(["a:1"], ps=["b:2"])}, "cluster lists ps; multi-worker training accepts 'worker'"),
])
def test_bad_tf_config_is_one_clear_line(environ, fragment):
    with pytest.raises(ValueError) as error:
        read_tf_config(environ)
    assert fragment in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("tf_config", "extra", "fragment"), [
    (None, [], "TF_CONFIG, which is not set"),
    ("not json", [], "TF_CONFIG is not valid JSON"),
    (_config(["127.0.0.1:1", "127.0.0.1:2"], index=5), [], "Received: index=5"),
    (None, ["--distribute", "everywhere"], "distribute='everywhere'"),
])
def test_bad_distribution_stores_nothing(tmp_path, capsys, monkeypatch, tf_config, extra, fragment):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    code = main([*TRAIN, "--models-dir", str(tmp_path), *(extra or ["--distribute", "multi-worker"])])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_a_model_kind_without_distribution_is_refused(tmp_path, capsys):
    code = main(["train", "model", "BTCUSDT", "--model-type", "lightgbm", "--distribute", "mirrored",
                 "--models-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "needs a model of the factory's Keras kind" in err and not any(tmp_path.iterdir())


def test_local_cluster_environments():
    workers = cluster_environments(2, "tf", port=4000)
    assert [role for role, _ in workers] == ["worker 0", "worker 1"]
    assert json.loads(workers[1][1]["TF_CONFIG"]) == {"cluster": {"worker": ["127.0.0.1:4000", "127.0.0.1:4001"]},
                                                      "task": {"type": "worker", "index": 1}}
    tuners = dict(cluster_environments(2, "tuner", port=5000))
    assert tuners["tuner1"] == {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "5000",
                                "KERASTUNER_TUNER_ID": "tuner1"}
    with pytest.raises(ValueError, match="A local cluster has 1..16 workers. Received: 0"):
        cluster_environments(0)


def test_cluster_local_without_a_command(capsys):
    assert main(["cluster-local", "2"]) == 2
    assert "needs the command every process runs, after '--'" in capsys.readouterr().err


@pytest.mark.slow  # three processes importing TensorFlow: ~35 s of the 5-minute default suite
def test_two_local_workers_train_one_model_the_chief_stores(tmp_path, capsys):
    """Both workers finish; one version is stored (by the chief), recording the strategy; its figures match a
    single-process run with the same global batch and seed within RELATIVE_TOLERANCE."""
    cluster_store, single_store = tmp_path / "cluster", tmp_path / "single"
    code = main(["cluster-local", "2", "--", "atb", *TRAIN, "--distribute", "multi-worker",
                 "--models-dir", str(cluster_store)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "[worker 1] worker 1 of 2: training finished; the chief evaluates, exports and stores" in out
    assert "[worker 0] stored" in out and "[worker 1] stored" not in out
    versions = list((cluster_store / "BTCUSDT" / "price").glob("2*"))
    assert len(versions) == 1
    distributed = json.loads((versions[0] / "metadata.json").read_text())
    assert distributed["distribution"] == {"strategy": "multi-worker", "replicas": 2, "workers": 2,
                                           "task": "worker 0 of 2 (chief)"}
    assert distributed["config"]["distribute"] == "multi-worker" and distributed["onnx"]["max_abs_diff"] < 1e-4
    assert main([*TRAIN, "--models-dir", str(single_store), "--quiet"]) == 0
    capsys.readouterr()
    single = json.loads(next((single_store / "BTCUSDT" / "price").glob("2*/metadata.json")).read_text())
    assert single["distribution"]["replicas"] == 1
    for a, b in ((distributed["history"]["val_loss"][-1], single["history"]["val_loss"][-1]),
                 (distributed["metrics"]["model"]["rmse"], single["metrics"]["model"]["rmse"])):
        assert abs(a - b) / abs(b) < RELATIVE_TOLERANCE, (a, b)


TUNE = ["tune", "BTCUSDT", "--model-type", "lstm", "--variant", "tiny", "--tuner", "random", "--max-trials", "4",
        "--epochs", "1", "--days", "30", "--sequence-length", "24"]


@pytest.mark.slow  # three processes importing TensorFlow
def test_a_chief_and_two_tuner_workers_share_one_search(tmp_path, capsys):
    """keras-tuner's chief/worker mode through KERASTUNER_*: the trials are split between the workers, and the
    chief (which trains nothing) holds every result and writes the best."""
    from ml.training_pipeline.tuning import BEST_FILE, WORKER_FILE

    code = main(["cluster-local", "2", "--tuner", "--", "atb", *TUNE, "--directory", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    [project] = list(tmp_path.iterdir())
    result = json.loads((project / BEST_FILE).read_text())
    trials = result["trials"]
    assert len(trials) == 4 and all(t["status"] == "COMPLETED" and t["val_loss"] > 0 for t in trials)
    assert result["val_loss"] == min(t["val_loss"] for t in trials)
    by_worker = {w: [t["trial_id"] for t in trials if t["worker"] == w] for w in ("tuner0", "tuner1")}
    assert all(by_worker.values()), by_worker  # each worker trained at least one trial
    assert sorted(by_worker["tuner0"] + by_worker["tuner1"]) == sorted(t["trial_id"] for t in trials)
    records = [json.loads(p.read_text()) for p in project.glob(f"trial_*/{WORKER_FILE}")]
    assert len({r["pid"] for r in records}) == 2  # two processes trained, neither of them the chief
    assert "[chief] trials per worker: tuner0" in out and "[tuner0] tuner0: trained" in out
    assert "[chief] saved" in out and "[tuner0] saved" not in out


@pytest.mark.parametrize(("variables", "fragment"), [
    ({"KERASTUNER_ORACLE_IP": "127.0.0.1"}, "KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_PORT are not set"),
    ({"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "http", "KERASTUNER_TUNER_ID": "chief"},
     "KERASTUNER_ORACLE_PORT must be a port number 1..65535. Received: 'http'"),
])
def test_bad_tuner_cluster_variables(tmp_path, capsys, monkeypatch, variables, fragment):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert main([*TUNE, "--directory", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and not any(tmp_path.iterdir())
