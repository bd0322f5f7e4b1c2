"""keras-tuner search, walk-forward evaluation and the architecture benchmark, on the bundled real data.

Each runs for real on a tiny model and a short window; the bad inputs fail in one line before any data is read.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ml.training_pipeline.config import TrainingConfig

TINY = {"symbol": "BTCUSDT", "model_type": "tcn", "variant": "tiny", "days": 120, "epochs": 2}
SPACE = {"filters": [4, 8], "num_levels": [1, 2], "dense_units": 4}



def one_line_error(code, err, fragment):
    lines = [line for line in err.splitlines() if line.startswith("atb: ")]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err


def test_search_space_comes_from_the_presets_and_takes_overrides():
    from ml.training_pipeline.tuning import search_space

    dims, fixed = search_space("attention_lstm")
    assert set(dims["lstm_units"].choices) == {(64, 32), (128, 64), (256, 128, 64)}  # the presets' sizes
    assert (dims["dropout"].low, dims["dropout"].high) == (0.1, 0.3) and dims["learning_rate"].log
    dims, fixed = search_space("tcn", overrides={"num_filters": [8, 16], "kernel_size": 5, "dropout": [0.0, 0.1, 0.2]})
    assert (dims["filters"].low, dims["filters"].high, dims["filters"].integer) == (8, 16, True)  # guide's name
    assert fixed["kernel_size"] == 5 and dims["dropout"].choices == (0.0, 0.1, 0.2)
    with pytest.raises(ValueError, match="does not have: 'lstm_units'"):
        search_space("tcn", overrides={"lstm_units": [[4]]})


def test_a_real_search_resumes_and_its_best_trial_reproduces(tmp_path):
    """Two Bayesian trials; the same call with one more trial runs only that one; the stored best
    hyperparameters retrained with the same seed give the same validation loss."""
    from ml.training_pipeline.pipeline import fit_model, plan_run, prepare
    from ml.training_pipeline.tuning import load_best_params, tune

    config = TrainingConfig(**{**TINY, "epochs": 1})
    result = tune(config, "bayesian", 2, overrides=SPACE, directory=tmp_path, verbose=0, log=None)
    assert len(result.trials) == 2 and result.resumed_trials == 0
    assert len({json.dumps(t.params, sort_keys=True) for t in result.trials}) == 2
    stored = json.loads(result.path.read_text())
    assert stored["val_loss"] == result.best_val_loss == min(t.val_loss for t in result.trials)
    resumed = tune(config, "bayesian", 3, overrides=SPACE, directory=tmp_path, verbose=0, log=None)
    assert resumed.resumed_trials == 2 and len(resumed.trials) == 3
    before = {t.trial_id: t.params for t in result.trials}
    assert {t.trial_id: t.params for t in resumed.trials if t.trial_id in before} == before  # not rerun

    params = load_best_params(resumed.path, "tcn")
    retrain = replace(config, model_kwargs=params)
    plan = plan_run(retrain)
    _, history = fit_model(plan, prepare(plan))
    assert min(history["val_loss"]) == pytest.approx(resumed.best_val_loss, rel=1e-6)


def test_tune_and_train_from_its_result_through_the_cli(tmp_path, atb):
    code, out, err = atb("tune", "BTCUSDT", "--model-type", "tcn", "--variant", "tiny", "--tuner", "hyperband",
                         "--max-trials", "2", "--epochs", "2", "--days", "120", "--space", "filters=[4,8]",
                         "--space", "num_levels=1", "--directory", tmp_path / "search", "--quiet", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["trials"]) == 2 and result["best_params"]["num_levels"] == 1
    code, out, err = atb("train", "model", "BTCUSDT", "--model-type", "tcn", "--variant", "tiny", "--days", "120",
                         "--epochs", "1", "--params-from", result["path"], "--param", "dropout=0.0",
                         "--models-dir", tmp_path / "store", "--quiet", "--json")
    assert code == 0, err
    stored = json.loads(((tmp_path / "store" / "BTCUSDT" / "price" / "latest").resolve() / "metadata.json").read_text())
    assert stored["config"]["model_kwargs"]["filters"] == result["best_params"]["filters"]
    assert stored["config"]["model_kwargs"]["dropout"] == 0.0  # --param wins over the tuning result
    code, _, err = atb("train", "model", "BTCUSDT", "--model-type", "lstm", "--params-from", result["path"],
                       "--models-dir", tmp_path / "store")
    one_line_error(code, err, "The tuning result is for model_type='tcn'. Received: model_type='lstm'")


@pytest.mark.parametrize("argv, fragment", [
    (["--tuner", "grid"], "Unknown tuner 'grid'. Accepted: bayesian, hyperband, random"),
    (["--max-trials", "0"], "max_trials must be an int >= 1. Received: max_trials=0"),
    (["--space", "lstm_units=[[8]]"], "Search-space override for a parameter model_type='tcn' does not have: 'lstm_units'"),
])
def test_tune_bad_input(argv, fragment, tmp_path, atb, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = atb("tune", "BTCUSDT", "--model-type", "tcn", *argv)
    one_line_error(code, err, fragment)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_walk_forward_refits_on_consecutive_windows(capsys):
    from ml.training_pipeline.walk_forward import walk_forward

    report = walk_forward(TrainingConfig(**{**TINY, "days": 200, "epochs": 1}), 2)
    first, second = report.folds
    assert first.test[1] < second.test[0]  # consecutive, never overlapping
    assert first.train[1] < first.validation[0] < first.test[0]
    assert second.train[1] > first.train[1] and second.validation[1] > first.test[0]  # the history grows
    assert {"rmse", "persistence_rmse", "skill"} <= set(report.spread)
    skills = [f.metrics["skill"] for f in report.folds]
    assert report.spread["skill"]["min"] == min(skills) and report.spread["skill"]["max"] == max(skills)


@pytest.mark.parametrize("argv, fragment", [
    (["--walk-forward", "1"], "walk-forward needs K >= 2 folds. Received: K=1"),
    (["--walk-forward", "40", "--model-type", "tcn", "--days", "200"],
     "K=40 is too large for 198 days of data: a test window would be 2.0% of its fold's bars"),
    (["--walk-forward", "3"], "No stored model for BTCUSDT to take the settings from; give --model-type"),
    ([], "atb evaluate needs --data FILE (a stored model on new data) or --walk-forward K"),
])
def test_walk_forward_bad_input(argv, fragment, tmp_path, atb):
    code, _, err = atb("evaluate", "BTCUSDT", *argv, "--models-dir", tmp_path)
    one_line_error(code, err, fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["--models", "tcnn"], "Unknown model_type 'tcnn'. Did you mean 'tcn'?"),
    (["--epochs", "0"], "--epochs must be an int >= 1. Received: --epochs=0"),
    (["--models", "tcn", "--variant", "huge"], "model_type='tcn' has no variant 'huge'"),
    (["--from-json", "missing.json"], "No comparison file at 'missing.json'"),
])
def test_benchmark_bad_input(argv, fragment, tmp_path, atb):
    code, _, err = atb("benchmark", *argv, "--out", tmp_path / "results")
    one_line_error(code, err, fragment)
    assert not (tmp_path / "results").exists()
