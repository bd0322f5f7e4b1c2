"""The levers that make forecasts beat their strongest baseline: a baseline the model adds itself (Keras and
LightGBM, in their native files and their ONNX graphs), seed ensembles stored as one model, conformal intervals
that keep their coverage when the period changes, and a trading verdict next to the statistical one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.training_pipeline.common.conformal import adaptive_half_widths, split_half_width
from ml.training_pipeline.export import export_onnx
from ml.training_pipeline.models import LinearOffset, create_model
from ml.training_pipeline.models.kinds import get_kind
from ml.training_pipeline.models.kinds.base import FitData, FitSettings

OFFSET = LinearOffset("baseline", (0.5, -0.25, 1.0), 0.3, ("a", "b", "c"))


def _split(rng, rows: int, steps: int = 6, features: int = 4) -> FitData:
    inputs = {"inputs": rng.normal(size=(rows, steps, features)).astype("float32"),
              "baseline": rng.normal(size=(rows, 3)).astype("float32")}
    # the target is the baseline plus a correction the window explains
    return FitData(inputs, OFFSET.apply(inputs["baseline"]) + inputs["inputs"][:, -1, 0] + 0.1 * rng.normal(size=rows))


def test_lightgbm_boosts_from_the_baseline_and_adds_it_back_in_every_file(tmp_path):
    rng = np.random.default_rng(0)
    train, validation = _split(rng, 600), _split(rng, 200)
    model = create_model("lightgbm", {"inputs": (6, 4), "baseline": (3,)}, variant="tiny", offset=OFFSET)
    kind = get_kind("estimator")
    kind.fit(model, train, validation, FitSettings())
    predicted = kind.predict(model, validation.inputs).ravel()
    baseline_only = OFFSET.apply(validation.inputs["baseline"])
    assert np.sqrt(np.mean((predicted - validation.y) ** 2)) < 0.5 * np.sqrt(np.mean((baseline_only - validation.y) ** 2))
    kind.save(model, tmp_path)
    loaded = kind.load(tmp_path / "model.txt")
    np.testing.assert_allclose(kind.predict(loaded, validation.inputs).ravel(), predicted, rtol=1e-6, atol=1e-6)
    assert export_onnx(model, tmp_path / "model.onnx", sample=validation.inputs).max_abs_diff < 1e-4


def test_a_keras_model_with_an_offset_starts_as_its_baseline(tmp_path):
    model = create_model("tcn", {"inputs": (12, 4), "baseline": (3,)}, variant="tiny", offset=OFFSET)
    split = _split(np.random.default_rng(1), 16, steps=12)
    # the gate starts at 0: the untrained model is the baseline, exactly
    np.testing.assert_allclose(model.predict(split.inputs, verbose=0).ravel(), OFFSET.apply(split.inputs["baseline"]),
                               rtol=1e-5, atol=1e-5)
    assert export_onnx(model, tmp_path / "model.onnx", sample=split.inputs).max_abs_diff < 1e-4


def test_an_offset_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match=r"offset reads input 'baseline' of shape \(3,\): input_shape must give it"):
        create_model("tcn", (12, 4), variant="tiny", offset=OFFSET)
    with pytest.raises(ValueError, match="A baseline offset needs a regression target. Received: task='binary'"):
        create_model("lightgbm", {"inputs": (6, 4), "baseline": (3,)}, task="binary", offset=OFFSET)


def test_a_seed_ensemble_is_one_model_whose_output_is_the_members_mean(tmp_path):
    import keras

    kind = get_kind("keras")
    members = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        members.append(create_model("lstm", (12, 4), variant="tiny"))
    ensemble = kind.combine(members)
    x = np.random.default_rng(0).normal(size=(8, 12, 4)).astype("float32")
    mean = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), mean, rtol=1e-5, atol=1e-6)
    from ml.training_pipeline.uncertainty import predict_with_uncertainty

    spread = predict_with_uncertainty(ensemble, x, method="ensemble", interval=0.9)
    np.testing.assert_allclose(spread.mean, mean, rtol=1e-5, atol=1e-6)
    assert spread.n_samples == 2 and (spread.std > 0).all() and (spread.lower <= spread.upper).all()
    with pytest.raises(ValueError, match="needs a seed ensemble"):
        predict_with_uncertainty(members[0], x, method="ensemble")
    assert ensemble.name == "lstm" and export_onnx(ensemble, tmp_path / "model.onnx", sample=x).max_abs_diff < 1e-4
    kind.save(ensemble, tmp_path)
    np.testing.assert_allclose(kind.load(tmp_path / "model.keras").predict(x, verbose=0), mean, rtol=1e-5, atol=1e-6)


def test_the_adaptive_interval_keeps_its_coverage_where_the_split_one_loses_it():
    """Residuals calibrated on a calm part, then a part three times as wild: split conformal under-covers badly,
    ACI on recent residuals returns to near the nominal level."""
    rng = np.random.default_rng(3)
    calm, wild = rng.normal(size=1500), 3 * rng.normal(size=3000)
    split = split_half_width(np.abs(calm), 0.9)
    widths, alpha, recent = adaptive_half_widths(np.zeros(3000), wild, np.abs(calm), 0.9, delay=24)
    assert np.mean(np.abs(wild) <= split) < 0.5
    assert 0.85 < np.mean(np.abs(wild) <= widths) < 0.95 and len(recent) == 720 and 0 <= alpha < 0.2


def test_diagnose_gives_a_tradable_verdict_at_a_cost(atb):
    code, out, err = atb("diagnose", "BTCUSDT", "--target", "direction", "--days", "150", "--cost-bps", "10", "--json")
    assert code == 0, err
    report = json.loads(out)
    trading = report["trading"]
    assert report["tradable"] is trading["tradable"] and trading["cost_bps"] == 10
    assert trading["tradable"] == (trading["break_even_bps"] > 10)
    assert -1 <= trading["correlation"] <= 1 and trading["periods"] == report["holdout_rows"]
    code, _, err = atb("diagnose", "BTCUSDT", "--target", "direction", "--cost-bps", "-1")
    assert code == 2 and err.strip() == "atb: error: cost_bps must be a number in [0, 10000). Received: cost_bps=-1.0"


def test_covariates_from_the_file_join_the_window_and_are_read_again_to_serve(tmp_path, atb):
    root, short = tmp_path / "models", tmp_path / "no_covariates.csv"
    code, out, err = atb("train", "model", "BTCUSDT", "--model-type", "lightgbm", "--variant", "tiny", "--days", "45",
                         "--epochs", "3", "--covariates", "Trade_Count,taker_buy_asset_volume", "--models-dir", root)
    assert code == 0, err
    schema = json.loads(((root / "BTCUSDT" / "price" / "latest").resolve() / "feature_schema.json").read_text())
    assert schema["covariates"] == ["trade_count", "taker_buy_asset_volume"]
    assert schema["feature_names"][-2:] == schema["covariates"] and len(schema["scaler"]["mean"]) == 17
    code, out, err = atb("predict", "BTCUSDT", "--models-dir", root)
    assert code == 0 and "predicted close" in out, err
    # serving needs the same columns: a file without them is one clear line
    import pandas as pd

    from ml.data import bundled_sample_path
    pd.read_csv(bundled_sample_path("BTCUSDT")).iloc[-1500:, :6].to_csv(short, index=False)
    code, out, err = atb("predict", "BTCUSDT", "--models-dir", root, "--data", short)
    assert code == 2 and "Covariate column 'trade_count' is not in" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("covariates, fragment", [
    ("nope", "Covariate column 'nope' is not in bundled:BTCUSDT_1h"),
    ("rsi_14", "'rsi_14' is a column the library computes or reads itself"),
    ("trade_count,TRADE_COUNT", "a name repeats"),
])
def test_bad_covariates_are_refused_and_store_nothing(tmp_path, atb, covariates, fragment):
    code, out, err = atb("train", "model", "BTCUSDT", "--model-type", "lightgbm", "--variant", "tiny", "--days", "30",
                         "--covariates", covariates, "--models-dir", tmp_path / "models")
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "models").exists()


def test_a_covariate_gap_takes_the_last_known_value_and_leading_bars_without_one_are_dropped(tmp_path):
    from ml.training_pipeline.problems.price.ohlcv import load_ohlcv

    rows = 10
    frame = {"time": [1_600_000_000_000 + 3_600_000 * i for i in range(rows)], "open": [10.0] * rows,
             "high": [11.0] * rows, "low": [9.0] * rows, "close": [10.5] * rows, "volume": [1.0] * rows,
             "funding": [None, None, 0.1, None, 0.3, 0.4, None, None, 0.7, 0.8]}
    import pandas as pd
    pd.DataFrame(frame).to_csv(tmp_path / "bars.csv", index=False)
    loaded = load_ohlcv("X", tmp_path / "bars.csv", covariates=("funding",))
    assert loaded.frame["funding"].tolist() == [0.1, 0.1, 0.3, 0.4, 0.4, 0.4, 0.7, 0.8]
    assert any("dropped the first 2 bars" in note for note in loaded.notes)
