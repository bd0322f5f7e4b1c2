"""Problems as objects: a user's own named arrays through `train`, realized volatility through `atb`,
sample weights, and clear errors (with nothing stored) for bad input on these paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.problems import ArraysProblem, get_problem

SMALL = dict(epochs=2, batch_size=64, patience=2)


@pytest.fixture(scope="module")
def hourly_arrays(btc_hourly):
    """Real BTCUSDT bars as a two-input problem: a window of 12 hourly log returns and volume
    changes (float32), the hour of day and day of week (int32 ids), next 6 bars' absolute move."""
    frame = btc_hourly.iloc[-3000:]
    close, volume = frame["close"].to_numpy(float), frame["volume"].to_numpy(float)
    returns = np.diff(np.log(close)) * 100
    volume_change = np.diff(np.log1p(volume))
    steps, ahead = 12, 6
    ends = np.arange(steps, len(returns) - ahead)
    window = np.stack([np.column_stack([returns[e - steps:e], volume_change[e - steps:e]]) for e in ends]).astype("float32")
    times = frame.index[1:][ends - 1]
    ids = np.column_stack([times.hour, times.dayofweek]).astype("int32")
    target = np.array([np.abs(returns[e:e + ahead]).sum() for e in ends], dtype="float32")
    return {"window": window, "ids": ids}, target


def _config(tmp_path, model_type="embedding_lstm", variant="tiny", **kwargs):
    return TrainingConfig(symbol="hourly_moves", model_type=model_type, variant=variant, models_dir=str(tmp_path / "models"),
                          **{**SMALL, **kwargs})


def test_two_named_inputs_train_export_and_serve_from_the_store(hourly_arrays, tmp_path):
    from ml.training_pipeline.inference import StoredModel
    from ml.training_pipeline.models.kinds import get_kind
    from ml.training_pipeline.pipeline import train

    inputs, target = hourly_arrays
    problem = ArraysProblem(inputs, target, task="positive", name="next6h-move")
    result = train(_config(tmp_path, model_kwargs={"vocab_size": 24, "num_ids": 2}), verbose=0, problem=problem)
    assert result.version_dir.parent.name == "next6h-move" and result.version_dir.parent.parent.name == "HOURLY_MOVES"
    onnx_inputs = {s["name"]: s["dtype"] for s in result.onnx["inputs"]}
    assert onnx_inputs == {"window": "float32", "ids": "int32"} and result.onnx["max_abs_diff"] < 1e-4
    assert set(result.report) >= {"model", "train_prior", "skill_train_prior"} and result.report["n"] > 100

    stored = StoredModel.load("hourly_moves", target="next6h-move", models_dir=str(tmp_path / "models"))
    batch = {"window": inputs["window"][-50:], "ids": inputs["ids"][-50:]}
    served = stored.predict(batch)  # ONNX Runtime
    keras_model = get_kind("keras").load(result.version_dir / "model.keras")
    np.testing.assert_allclose(served, np.asarray(keras_model.predict(batch, verbose=0)), atol=1e-4)
    assert np.all(served > 0)
    meta = json.loads((result.version_dir / "metadata.json").read_text())
    assert meta["problem"] == {"type": "arrays", "name": "next6h-move", "task": "positive", "units": 1}
    assert meta["model"]["kind"] == "keras" and [i["name"] for i in meta["model"]["inputs"]] == ["window", "ids"]


@pytest.mark.parametrize(
    "change,message",
    [(lambda i: {"window": i["window"], "idz": i["ids"]}, r"does not declare: 'idz'\. Accepted: window, ids"),
     (lambda i: {**i, "ids": i["ids"].astype("float32")}, r"\['ids'\] must be an integer array \(int32\)\. Received dtype=float32"),
     (lambda i: {**i, "ids": np.column_stack([i["ids"], i["ids"][:, :1]])}, r"input 'ids' of model_type='embedding_lstm' has shape \(2,\).*Received: input_shape\['ids'\]=\(3,\)"),
     (lambda i: {**i, "window": i["window"][:, :, 0]}, r"input_shape must be \(timesteps, features\).*Received: input_shape=\(12,\)")],
)
def test_inputs_the_model_does_not_declare_are_refused_before_training(hourly_arrays, tmp_path, change, message):
    from ml.training_pipeline.pipeline import train

    inputs, target = hourly_arrays
    problem = ArraysProblem(change(inputs), target, task="positive", name="moves")
    with pytest.raises(ValueError, match=message):
        train(_config(tmp_path, model_kwargs={"vocab_size": 24, "num_ids": 2}), verbose=0, problem=problem)
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    "kwargs,message",
    [({"groups": ["a", None, "b"]}, r"groups must not have missing values\. Received 1 missing, first at row 1"),
     ({"groups": ["a", float("nan"), "b"]}, r"groups must not have missing values"),
     ({"weights": [1.0, -1.0, 1.0]}, r"sample weights must be >= 0\. Received a weight -1\.0"),
     ({"weights": [1.0, float("nan"), 1.0]}, r"sample weights must be finite\. Received 1 NaN/inf values"),
     ({"weights": [1.0, 1.0]}, r"one value per row \(3\)\. Received: 2 values"),
     ({"task": "ranking"}, r"Unknown task 'ranking'.*Accepted: binary, multiclass, positive, quantile, regression"),
     ({"name": "../up"}, r"name must be 1-32 lower-case letters.*Received: name='\.\./up'"),
     ({"group_weights": {"a": 1.0}}, r"group_weights needs groups"),
     ({"task": "positive", "target": [1.0, 0.0, 2.0]}, r"target must be > 0 for task='positive'")],
)
def test_bad_problem_arguments_raise_one_clear_line(kwargs, message):
    kwargs = dict(kwargs)
    target = kwargs.pop("target", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=message) as error:
        ArraysProblem({"inputs": np.zeros((3, 2), "float32")}, target, **kwargs)
    assert "\n" not in str(error.value)


def test_unknown_target_and_problem_type():
    from ml.training_pipeline.problems import problem_type

    with pytest.raises(ValueError, match=r"Unknown target 'volatilty'\. Did you mean 'volatility'\?"):
        get_problem("volatilty")
    with pytest.raises(ValueError, match=r"Unknown problem type 'prices'"):
        problem_type("prices")


def test_sample_and_group_weights_reach_the_fit(tmp_path):
    """Rows of group 'noise' carry weight 0: a tree model then learns only group 'signal'."""
    from ml.training_pipeline.pipeline import train

    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 3)).astype("float32")
    groups = np.where(np.arange(600) % 2 == 0, "signal", "noise")
    y = np.where(groups == "signal", x[:, 0], 10.0).astype("float32")
    problem = ArraysProblem(x, y, task="regression", name="weighted", groups=groups,
                            group_weights={"signal": 1.0, "noise": 0.0}, shuffle=True)
    data = problem.prepare(_config(tmp_path, model_type="lightgbm"))
    assert data.train.weight.mean() == pytest.approx(1.0)
    # epochs=None: LightGBM takes the preset's n_estimators as its most boosting rounds
    result = train(_config(tmp_path, model_type="lightgbm", variant="lightweight", epochs=None), verbose=0,
                   problem=problem)
    # weighted metrics: the zero-weight rows do not count, and the model fits the signal rows
    assert result.report["weighted"] and result.report["model"]["rmse"] < 0.5 * result.report["train_prior"]["rmse"]
    assert set(result.report["by_group"]) == {"signal"}  # a group whose rows all weigh 0 is not scored
    assert result.report["by_group"]["signal"]["model"]["rmse"] < 0.5


def test_config_targets_name_problems_with_their_default_horizon():
    assert TrainingConfig(symbol="BTCUSDT", model_type="tcn", target="volatility").horizon == 24
    assert TrainingConfig(symbol="BTCUSDT", model_type="tcn").horizon == 1
    assert TrainingConfig(symbol="BTCUSDT", model_type="tcn", target="volatility", horizon=6).horizon == 6



def test_volatility_through_the_cli(tmp_path, atb, btc_hourly):
    root = tmp_path / "models"
    code, out, err = atb("train", "model", "BTCUSDT", "--model-type", "tcn", "--variant", "tiny", "--target",
                         "volatility", "--days", "120", "--epochs", "2", "--sequence-length", "24",
                         "--models-dir", root)
    assert code == 0, err
    assert "persistence" in out and "har_rv" in out and "skill vs persistence" in out and "skill vs har_rv" in out
    version = (root / "BTCUSDT" / "volatility" / "latest").resolve()
    meta = json.loads((version / "metadata.json").read_text())
    report = meta["metrics"]
    assert report["persistence"]["rmse"] > 0 and report["har_rv"]["rmse"] > 0 and report["horizon_bars"] == 24
    assert report["skill"] == pytest.approx(1 - report["model"]["rmse"] / report["persistence"]["rmse"])
    schema = json.loads((version / "feature_schema.json").read_text())
    assert len(schema["baselines"]["har_coefficients"]) == 4
    # the default: the model learns the correction to the extended HAR, which it adds itself (so does its ONNX file)
    assert "calendar_har" in out and "skill vs extended_har" in out and "90% conformal interval covers" in out
    assert schema["offset"]["columns"] == schema["baselines"]["extended_har"]["columns"][1:]
    assert [i["name"] for i in meta["model"]["inputs"]] == ["inputs", "baseline"] and meta["onnx"]["max_abs_diff"] < 1e-4
    assert schema["feature_names"][-4:] == ["bar_hour_sin", "bar_hour_cos", "bar_weekday_sin", "bar_weekday_cos"]
    # learning a correction, the TCN trains gently (its family's residual_params): learning rate 1e-4, dropout 0.3
    assert meta["history"]["learning_rate"][0] == pytest.approx(1e-4)
    import zipfile

    layers = json.loads(zipfile.ZipFile(version / "model.keras").read("config.json"))["config"]["layers"]
    assert {layer["config"]["rate"] for layer in layers if "rate" in layer["config"]} == {0.3}
    interval = report["interval"]
    assert interval["nominal"] == 0.9 and 0 < interval["coverage"] <= 1 and 0 < interval["adaptive_coverage"] <= 1

    code, out, _ = atb("models", "list", "--models-dir", root)
    assert code == 0 and "volatility" in out and "HAR-RV" in out
    code, out, _ = atb("predict", "BTCUSDT", "--target", "volatility", "--models-dir", root, "--json")
    prediction = json.loads(out)
    assert code == 0 and 0 < prediction["predicted_volatility"] < 1 and prediction["horizon_bars"] == 24
    low, high = (prediction["interval"][f"{side}_prediction"]["predicted_volatility"] for side in ("lower", "upper"))
    assert prediction["interval"]["level"] == 0.9 and low < prediction["predicted_volatility"] < high
    code, out, _ = atb("predict", "BTCUSDT", "--target", "volatility", "--models-dir", root, "--interval", "0.8")
    assert code == 0 and "80% interval: volatility in [" in out
    later = tmp_path / "later.csv"
    btc_hourly.loc["2021-06-01":"2021-08-01"].to_csv(later)
    code, out, err = atb("evaluate", "BTCUSDT", "--target", "volatility", "--data", later, "--models-dir", root)
    assert code == 0, err
    assert "har_rv" in out and "skill vs har_rv" in out


def test_volatility_without_the_residual_target_or_the_calendar(tmp_path, atb):
    root = tmp_path / "models"
    code, out, err = atb("train", "model", "BTCUSDT", "--model-type", "lightgbm", "--variant", "tiny", "--target",
                         "volatility", "--days", "120", "--no-residual", "--no-calendar", "--models-dir", root)
    assert code == 0, err
    version = (root / "BTCUSDT" / "volatility" / "latest").resolve()
    schema = json.loads((version / "feature_schema.json").read_text())
    meta = json.loads((version / "metadata.json").read_text())
    assert schema["offset"] is None and len(schema["feature_names"]) == 15
    assert [i["name"] for i in meta["model"]["inputs"]] == ["inputs"] and not (version / "offset.json").exists()


def test_volatility_target_has_no_look_ahead_in_its_baselines(btc_hourly):
    problem = get_problem("volatility", horizon=4)
    frame = btc_hourly[["open", "high", "low", "close"]].iloc[:2000]
    close = frame["close"]
    extras = problem.extras(frame, "1h")
    changed = frame.copy()
    changed.iloc[1500:] *= 1.5  # a jump after bar 1499 must not move any baseline at or before it
    later = problem.extras(changed, "1h")
    np.testing.assert_allclose(extras.iloc[:1500].to_numpy(), later.iloc[:1500].to_numpy(), equal_nan=True)
    target = problem.target(close, "1h")
    expected = 0.5 * np.log(np.sum(np.diff(np.log(close.to_numpy()[1000:1005])) ** 2))
    assert target.iloc[1000] == pytest.approx(expected)


def test_a_model_that_cannot_export_is_stored_without_onnx_and_still_serves(tmp_path):
    from ml.training_pipeline.inference import StoredModel
    from ml.training_pipeline.models.registry import Capabilities, register_model, unregister_model
    from ml.training_pipeline.pipeline import train

    @register_model("toy_no_onnx", description="A Dense layer that says it cannot export.",
                    variants={"default": {"units": 8, "learning_rate": 1e-2}, "tiny": {"units": 2, "learning_rate": 1e-2}},
                    capabilities=Capabilities(onnx_exportable=False), shape_ndim=(1, 1))
    def build_toy(inputs, *, units):
        import keras

        return keras.layers.Dense(units, activation="relu")(inputs)

    try:
        x = np.random.default_rng(0).standard_normal((300, 4)).astype("float32")
        problem = ArraysProblem(x, x[:, 0] * 2, name="plain")
        config = TrainingConfig(symbol="toy", model_type="toy_no_onnx", variant="tiny", epochs=2,
                                models_dir=str(tmp_path / "models"))
        result = train(config, verbose=0, problem=problem)
        files = {p.name for p in result.version_dir.iterdir()}
        assert "model.onnx" not in files and "model.keras" in files
        meta = json.loads((result.version_dir / "metadata.json").read_text())
        assert meta["onnx"]["exported"] is False and meta["model"]["capabilities"]["onnx_exportable"] is False
        assert "not exported" in result.table()
        served = StoredModel.load("TOY", target="plain", models_dir=str(tmp_path / "models")).predict(x[:5])
        assert served.shape == (5, 1) and np.all(np.isfinite(served))
    finally:
        unregister_model("toy_no_onnx")


@pytest.mark.parametrize("model_type, reads_calendar", [("tcn", False), ("tft", True)])
def test_the_calendar_input_is_built_only_for_a_model_that_reads_it(model_type, reads_calendar, monkeypatch):
    """The price problems offer the calendar ``known`` input to every model; built for all of them it cost 3.6 GB
    at 1M windows (issue 24). It is computed when a model's declared inputs first read it."""
    from ml.training_pipeline.config import TrainingConfig
    from ml.training_pipeline.pipeline import plan_run, prepare
    from ml.training_pipeline.problems.price import forecasts

    calls = []
    real = forecasts.calendar_window
    monkeypatch.setattr(forecasts, "calendar_window", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    data = prepare(plan_run(TrainingConfig(symbol="BTCUSDT", model_type=model_type, variant="tiny", days=60)))
    assert ("known" in data.train.inputs) == reads_calendar and bool(calls) == reads_calendar
