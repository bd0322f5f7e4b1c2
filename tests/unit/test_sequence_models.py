"""What the shared harness cannot know about the transformer family, Mamba and xLSTM.

The harness (``test_model_suite.py``) already runs every model and layer through shapes,
gradients, round trips and ONNX parity. Here: the parallel forms of the recurrences equal a
plain step-by-step loop on the same weights (also through the exported ONNX file), the
uncertainty API behaves as promised, the interpretation outputs, the TFT and the sampling
models through `atb`, and the bad inputs of this family.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from ml.cli import main
from ml.training_pipeline.common.tensors import generate_inputs
from ml.training_pipeline.export import OnnxPredictor, export_onnx
from ml.training_pipeline.layers import MambaBlock, MLSTMBlock, SLSTMBlock
from ml.training_pipeline.layers.mamba import ssd, ssd_reference
from ml.training_pipeline.layers.xlstm import mlstm_parallel, mlstm_reference, slstm_reference
from ml.training_pipeline.models import create_model, declared_inputs
from ml.training_pipeline.uncertainty import interval_report, predict_with_uncertainty

SMALL = ["--days", "60", "--epochs", "1", "--sequence-length", "24", "--batch-size", "64", "--variant", "tiny"]


def _sequence(length=24, width=8, batch=3, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal((batch, length, width))).astype("float32")


def _onnx_of(layer, x, tmp_path):
    """The layer as a one-layer model, exported; returns ONNX Runtime's output on x."""
    inputs = keras.Input(x.shape[1:], name="inputs")
    model = keras.Model(inputs, layer(inputs))
    export_onnx(model, tmp_path / "layer.onnx", sample=x)
    return OnnxPredictor(tmp_path / "layer.onnx").predict(x)


def _mamba_by_loop(block, x):
    """The Mamba block with its scan replaced by the step-by-step loop."""
    xs, dt, A, B, C, D, z = (np.asarray(a, np.float64) for a in block._parts(x))
    y = ssd_reference(xs, dt, A, B, C, D).reshape(len(x), x.shape[1], -1)
    gated = y * (z / (1 + np.exp(-z)))
    return x + np.asarray(block.out_proj(gated.astype("float32")))


def test_mamba_parallel_scan_equals_the_loop_in_keras_and_in_onnx(tmp_path):
    x = _sequence()
    block = MambaBlock(num_heads=2, d_state=4, conv_width=3)
    block(x)
    # non-trivial dynamics: larger steps and decays than at init
    block.dt_bias.assign(np.full(2, 0.5, "float32"))
    parts = block._parts(x)
    np.testing.assert_allclose(np.asarray(ssd(*parts[:6])), ssd_reference(*(np.asarray(a, np.float64) for a in parts[:6])),
                               atol=1e-5)
    by_loop = _mamba_by_loop(block, x)
    np.testing.assert_allclose(np.asarray(block(x)), by_loop, atol=1e-5)
    np.testing.assert_allclose(_onnx_of(block, x, tmp_path), by_loop, atol=1e-4)


def test_mamba_after_training_still_equals_the_loop():
    x = _sequence(batch=32)
    inputs = keras.Input((24, 8))
    block = MambaBlock(num_heads=2, d_state=4)
    model = keras.Model(inputs, keras.layers.Dense(1)(block(inputs)[:, -1]))
    model.compile("adam", "mse")
    model.fit(x, x[:, -1, :1], epochs=3, verbose=0)
    np.testing.assert_allclose(np.asarray(block(x)), _mamba_by_loop(block, x), atol=1e-5)


def test_mlstm_parallel_form_equals_the_recurrence_in_keras_and_in_onnx(tmp_path):
    x = _sequence()
    block = MLSTMBlock(num_heads=2, conv_width=3)
    block(x)
    q, k, v, i_pre, f_pre, xc, z = block._parts(x)
    # gates far from init: strong input gates and forgetting exercise the stabiliser
    i_pre, f_pre = i_pre * 4 + 2, f_pre - 3
    parallel = np.asarray(mlstm_parallel(q, k, v, i_pre, f_pre))
    loop = mlstm_reference(*(np.asarray(a, np.float64) for a in (q, k, v, i_pre, f_pre)))
    np.testing.assert_allclose(parallel, loop, atol=1e-5)
    # the whole block through ONNX equals the block whose mLSTM is the loop
    q, k, v, i_pre, f_pre, xc, z = block._parts(x)
    h = np.asarray(block.head_norm(mlstm_reference(*(np.asarray(a, np.float64) for a in (q, k, v, i_pre, f_pre)))
                                   .astype("float32")))
    h = h.reshape(np.asarray(xc).shape) + np.asarray(block.skip) * np.asarray(xc)
    z = np.asarray(z)
    by_loop = x + np.asarray(block.down((h * z / (1 + np.exp(-z))).astype("float32")))
    np.testing.assert_allclose(_onnx_of(block, x, tmp_path), by_loop, atol=1e-4)


def test_slstm_cell_equals_the_loop_in_keras_and_in_onnx(tmp_path):
    x = _sequence()
    block = SLSTMBlock()
    block(x)
    pre = np.asarray(block.pre(block.norm(x)), np.float64)
    cell = block.rnn.cell
    loop = slstm_reference(pre, np.asarray(cell.recurrent_kernel, np.float64), np.asarray(cell.bias, np.float64))
    np.testing.assert_allclose(np.asarray(block.rnn(pre.astype("float32"))), loop, atol=1e-5)
    onnx_out = _onnx_of(block, x, tmp_path)
    np.testing.assert_allclose(onnx_out, np.asarray(block(x)), atol=1e-4)


@pytest.mark.parametrize("name", ["mamba", "xlstm", "transformer"])
def test_length_388_stays_finite(name):
    model = create_model(name, (388, 3), variant="tiny")
    out = model.predict(_sequence(388, 3, batch=2, scale=5.0), verbose=0)
    assert np.all(np.isfinite(out))


# --- uncertainty ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_samplers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 12, 3)).astype("float32")
    y = x[:, -3:, :].mean(axis=(1, 2))[:, None].astype("float32")
    models = {}
    for name in ("mcdropout_transformer", "bayesian_transformer"):
        keras.utils.set_random_seed(0)
        models[name] = create_model(name, (12, 3), variant="tiny")
        models[name].fit(x, y, epochs=5, batch_size=64, verbose=0)
    return models, x, y


@pytest.mark.parametrize("name", ["mcdropout_transformer", "bayesian_transformer"])
def test_sampling_models_are_deterministic_without_sampling_and_spread_with_it(trained_samplers, name):
    models, x, _ = trained_samplers
    model = models[name]
    np.testing.assert_array_equal(model.predict(x[:32], verbose=0), model.predict(x[:32], verbose=0))
    result = predict_with_uncertainty(model, x[:32], n_samples=20, keep_samples=True)
    assert result.samples.shape == (20, 32, 1)
    assert np.all(result.std > 0) and np.all(result.lower <= result.upper)
    assert result.method == "sampling" and result.n_samples == 20


def test_draws_stacked_in_one_pass_are_independent_and_spread_as_draws_one_pass_each(trained_samplers, monkeypatch):
    """MC dropout draws a mask per row, so the 200 draws of one window share one forward pass; a weight posterior
    is drawn once per call, so the Bayesian model keeps one draw per pass."""
    from ml.training_pipeline import uncertainty

    models, x, _ = trained_samplers
    model = models["mcdropout_transformer"]
    assert uncertainty.draws_per_pass(model, rows=1, n_samples=200) == 200
    assert uncertainty.draws_per_pass(models["bayesian_transformer"], rows=1, n_samples=200) == 1
    passes = []
    monkeypatch.setattr(uncertainty, "_sampling_pass", lambda m, real=uncertainty._sampling_pass: (
        lambda arg: passes.append(1) or real(m)(arg)))
    stacked = predict_with_uncertainty(model, x[:1], n_samples=200, keep_samples=True)
    assert len(passes) == 1 and len(np.unique(stacked.samples)) > 150  # one pass, and not 200 copies of one draw
    monkeypatch.setattr(uncertainty, "draws_per_pass", lambda *args: 1)
    single = predict_with_uncertainty(model, x[:1], n_samples=200)
    assert len(passes) == 201
    # the same distribution: the two means within 4 standard errors, the spreads within 30% of each other
    assert abs(stacked.mean - single.mean).item() < 4 * single.std.item() * np.sqrt(2 / 200)
    assert 0.7 < stacked.std.item() / single.std.item() < 1.3


@pytest.mark.parametrize("name", ["mcdropout_transformer", "bayesian_transformer"])
def test_onnx_serves_the_deterministic_pass_not_samples(trained_samplers, name, tmp_path):
    models, x, _ = trained_samplers
    export_onnx(models[name], tmp_path / "m.onnx", sample=x[:64])
    predictor = OnnxPredictor(tmp_path / "m.onnx")
    served = predictor.predict(x[:64])
    np.testing.assert_array_equal(predictor.predict(x[:64]), served)  # no sampling in the graph
    np.testing.assert_allclose(served, models[name].predict(x[:64], verbose=0), atol=1e-4)
    sampled_mean = predict_with_uncertainty(models[name], x[:64], n_samples=20).mean
    assert np.max(np.abs(sampled_mean - served)) > 1e-4  # the MC mean is another number: the docs say so


@pytest.mark.parametrize("name", ["mcdropout_transformer", "bayesian_transformer"])
def test_predictive_std_grows_away_from_the_training_data(trained_samplers, name):
    models, x, _ = trained_samplers
    near = predict_with_uncertainty(models[name], x[:64], n_samples=30).std.mean()
    far = predict_with_uncertainty(models[name], x[:64] * 11 + 10, n_samples=30).std.mean()
    assert far > 2 * near, (near, far)


def test_interval_coverage_is_counted_on_held_out_rows(trained_samplers):
    models, _, _ = trained_samplers
    rng = np.random.default_rng(1)
    held_out = rng.standard_normal((200, 12, 3)).astype("float32")
    y = held_out[:, -3:, :].mean(axis=(1, 2))
    result = predict_with_uncertainty(models["mcdropout_transformer"], held_out, n_samples=20)
    report = interval_report(result, y)
    inside = np.mean((y >= result.lower[:, 0]) & (y <= result.upper[:, 0]))
    assert report["coverage"] == pytest.approx(inside) and report["nominal"] == 0.8 and report["n"] == 200


def test_binary_sampling_gives_entropy():
    model = create_model("mcdropout_transformer", (12, 3), variant="tiny", task="binary")
    result = predict_with_uncertainty(model, _sequence(12, 3, batch=8), n_samples=5)
    assert result.entropy.shape == (8,) and np.all((result.entropy >= 0) & (result.entropy <= np.log(2) + 1e-9))
    assert np.all(result.mutual_information >= -1e-9)


def test_tft_intervals_come_from_its_quantiles():
    model = create_model("tft", (12, 3), variant="tiny", task="quantile")
    inputs = generate_inputs(declared_inputs("tft", (12, 3), "tiny"), 16)
    result = predict_with_uncertainty(model, inputs)
    quantiles = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(result.lower[:, 0], quantiles[:, 0], rtol=1e-6)
    np.testing.assert_allclose(result.mean[:, 0], quantiles[:, 1], rtol=1e-6)
    np.testing.assert_allclose(result.upper[:, 0], quantiles[:, 2], rtol=1e-6)
    assert result.method == "quantiles"
    with pytest.raises(ValueError, match=r"needs the quantiles 0.25 and 0.75; the model predicts \[0.1, 0.5, 0.9\]"):
        predict_with_uncertainty(model, inputs, interval=0.5)


@pytest.mark.parametrize("kwargs,message", [
    ({"n_samples": 1}, r"n_samples must be an int >= 2.*Received: n_samples=1"),
    ({"n_samples": 2.5}, r"n_samples must be an int >= 2"),
    ({"interval": 1.2}, r"interval must be a coverage in \(0, 1\).*Received: interval=1.2"),
])
def test_bad_uncertainty_arguments(kwargs, message):
    model = create_model("mcdropout_transformer", (12, 3), variant="tiny")
    with pytest.raises(ValueError, match=message):
        predict_with_uncertainty(model, _sequence(12, 3), **kwargs)


def test_uncertainty_of_a_deterministic_model_is_refused():
    with pytest.raises(ValueError, match=r"model 'tcn' is deterministic and has no quantile outputs"):
        predict_with_uncertainty(create_model("tcn", (12, 3), variant="tiny"), _sequence(12, 3))


# --- interpretation --------------------------------------------------------------------------------

def test_interpretation_of_the_tft_and_the_encoder():
    from ml.training_pipeline.interpretation import interpret, variable_importance

    inputs = generate_inputs(declared_inputs("tft", (12, 3), "tiny"), 5)
    found = interpret(create_model("tft", (12, 3), variant="tiny"), inputs)
    past = found["variable_selection"]["past_selection"]
    assert past.shape == (5, 12, 3 + 4)  # observed + calendar variables at every past step
    np.testing.assert_allclose(past.sum(axis=-1), 1.0, rtol=1e-5)
    assert found["variable_selection"]["future_selection"].shape == (5, 1, 4)
    attention = found["attention"]["attention0"]
    assert attention.shape == (5, 13, 13)
    assert np.allclose(np.triu(attention, 1), 0.0)  # causal: no step attends to a later one
    assert sum(variable_importance(past).values()) == pytest.approx(1.0)
    encoder = interpret(create_model("transformer", (12, 3), variant="tiny"), _sequence(12, 3, batch=5))
    assert encoder["attention"]["block0_attention"].shape == (5, 2, 12, 12)


def test_padding_mask_hides_padded_steps():
    model = create_model("transformer", (10, 3), variant="tiny", padding_mask=True, dropout=0.0)
    x = _sequence(10, 3, batch=2)
    mask = np.ones((2, 10), bool)
    mask[:, 6:] = False
    changed = x.copy()
    changed[:, 6:] = 99.0  # whatever sits in the padding must not matter
    first = model.predict({"inputs": x, "padding_mask": mask}, verbose=0)
    np.testing.assert_allclose(model.predict({"inputs": changed, "padding_mask": mask}, verbose=0), first, atol=1e-5)


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs,shape,message", [
    ("transformer", {"d_model": 10, "num_heads": 4}, (12, 3),
     r"d_model must be divisible by num_heads. Received: d_model=10, num_heads=4"),
    ("tft", {"d_model": 12, "num_heads": 5}, (12, 3), r"d_model must be divisible by num_heads"),
    ("transformer", {}, (600, 3), r"sequence length 600 is longer than the positional limit max_length=512"),
    ("mamba", {"num_heads": 3}, (12, 3), r"expand \* d_model must be divisible by num_heads"),
    ("xlstm", {"slstm_at": (5,)}, (12, 3), r"slstm_at must list block positions in \[0, 1\]. Received: slstm_at=\(5,\)"),
    ("bayesian_transformer", {"prior_sigma": 0.0}, (12, 3), r"prior_sigma must be a number > 0"),
    ("tft", {}, (12, 3), None),
])
def test_bad_hyperparameters_are_refused_in_one_line(name, kwargs, shape, message):
    if message is None:  # the control: the same call with good values builds
        create_model(name, shape, variant="tiny", **kwargs)
        return
    with pytest.raises(ValueError, match=message) as caught:
        create_model(name, shape, variant="tiny", **kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("quantiles,message", [
    ((0.9, 0.1, 0.5), r"quantiles"), ((0.1, 1.0), r"quantiles"), ((0.0, 0.5), r"quantiles")])
def test_bad_quantiles_are_refused(quantiles, message):
    with pytest.raises(ValueError, match=message) as caught:
        create_model("tft", (12, 3), variant="tiny", task="quantile", quantiles=quantiles)
    assert str(quantiles[0]) in str(caught.value) or "Received" in str(caught.value)


# --- through atb ------------------------------------------------------------------------------------

@pytest.mark.slow  # ~20 s: the TFT's model, ONNX export and optional inputs pass the harness by default (above)
def test_the_tft_through_atb_with_its_interpretation(tmp_path, capsys):
    root = str(tmp_path / "models")
    assert main(["train", "model", "BTCUSDT", "--model-type", "tft", *SMALL, "--models-dir", root]) == 0
    version = tmp_path / "models" / "BTCUSDT" / "price" / "latest"
    metadata = json.loads((version / "metadata.json").read_text())
    assert {"variable_importance.png", "attention.png", "model.onnx"} <= {p.name for p in version.iterdir()}
    importance = metadata["interpretation"]["variable_importance"]["past_selection"]
    assert {"hour_sin", "weekday_cos", "log_return"} <= set(importance)
    assert [i["name"] for i in metadata["model"]["inputs"]] == ["inputs", "known"]
    assert main(["predict", "BTCUSDT", "--models-dir", root]) == 0
    assert main(["predict", "BTCUSDT", "--models-dir", root, "--uncertainty"]) == 2  # a point TFT: refused
    assert "deterministic and has no quantile outputs" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs", [{"static_vocab": 3}, {"known_features": 0}, {"padding_mask": True}])
def test_optional_inputs_pass_the_harness(kwargs):
    """The paths the tiny presets leave off: TFT's static id and no known input, the encoder's padding mask."""
    from ml.testing import run_model_test

    name = "transformer" if "padding_mask" in kwargs else "tft"
    report = run_model_test(name, preset="tiny", task="quantile" if name == "tft" else "regression", **kwargs)
    assert report["onnx_max_abs_diff"] < 1e-4
    expected = {"static_vocab": ["inputs", "known", "static"], "known_features": ["inputs"],
                "padding_mask": ["inputs", "padding_mask"]}[next(iter(kwargs))]
    assert [i["name"] for i in report["inputs"]] == expected


@pytest.mark.slow  # the static id input passes the harness by default (test_optional_inputs_pass_the_harness)
def test_two_symbols_feed_the_tft_a_static_symbol_id(tmp_path, capsys, btc_hourly):
    second = tmp_path / "second.csv"  # a second market: real bars of another period, as its own file
    frame = btc_hourly.loc["2021-01-01":"2021-04-01"].copy()
    frame.insert(0, "time", frame.index.astype("int64") // 10**6)
    frame.to_csv(second, index=False)
    root = str(tmp_path / "models")
    assert main(["train", "model", "BTCUSDT", "ETHUSDT", "--data", f"ETHUSDT={second}", "--model-type", "tft",
                 "--param", "static_vocab=2", *SMALL, "--models-dir", root]) == 0
    metadata = json.loads((tmp_path / "models" / "BTCUSDT-ETHUSDT" / "price" / "latest" / "metadata.json").read_text())
    assert [i["name"] for i in metadata["model"]["inputs"]] == ["inputs", "known", "static"]
    assert main(["predict", "ETHUSDT", "--data", str(second), "--models-dir", root]) == 0
    assert main(["predict", "BTCUSDT", "--models-dir", root]) == 0


# the sampling path through atb (trained interval's coverage, served bounds, --samples 1 refused) runs by default in
# the README's lines (mcdropout_transformer, tests/unit/test_layout.py); every family here under -m slow
@pytest.mark.parametrize("name", [pytest.param("transformer", marks=pytest.mark.slow),
                                  pytest.param("bayesian_transformer", marks=pytest.mark.slow),
                                  pytest.param("mamba", marks=pytest.mark.slow), pytest.param("xlstm", marks=pytest.mark.slow)])
def test_the_rest_of_the_family_through_atb(name, tmp_path, capsys):
    root = tmp_path / "models"
    assert main(["train", "model", "BTCUSDT", "--model-type", name, *SMALL, "--models-dir", str(root)]) == 0
    out = capsys.readouterr().out
    version = root / "BTCUSDT" / "price" / "latest"
    metadata = json.loads((version / "metadata.json").read_text())
    assert metadata["onnx"]["exported"] and metadata["onnx"]["max_abs_diff"] < 1e-4
    assert "persistence" in metadata["metrics"] and "skill" in metadata["metrics"]
    assert [i["name"] for i in metadata["model"]["inputs"]] == ["inputs"]  # the calendar is not fed to them
    assert ("uncertainty" in metadata["metrics"]) == (name == "bayesian_transformer")
    assert main(["predict", "BTCUSDT", "--models-dir", str(root)]) == 0
    if name != "bayesian_transformer":
        return
    # the sampling path through atb: the interval's coverage when trained, its bounds when served
    assert "80% interval covers" in out and "nominal 80%" in out
    assert 0 <= metadata["metrics"]["uncertainty"]["coverage"] <= 1
    capsys.readouterr()
    assert main(["predict", "BTCUSDT", "--models-dir", str(root), "--uncertainty", "--samples", "10", "--json"]) == 0
    bounds = json.loads(capsys.readouterr().out)["uncertainty"]
    assert bounds["lower"] <= bounds["upper"] and bounds["n_samples"] == 10
    assert bounds["lower_prediction"]["predicted_close"] <= bounds["upper_prediction"]["predicted_close"]
    assert main(["predict", "BTCUSDT", "--models-dir", str(root), "--uncertainty", "--samples", "1"]) == 2
    assert "n_samples must be an int >= 2" in capsys.readouterr().err


def test_conformal_calibration_reaches_the_nominal_coverage_on_new_rows(trained_samplers):
    from ml.training_pipeline.uncertainty import calibration_scale, widened

    models, _, _ = trained_samplers
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((1200, 12, 3)).astype("float32")
    y = rows[:, -3:, :].mean(axis=(1, 2)) + rng.normal(0, 0.3, 1200)  # noise the model cannot know
    result = predict_with_uncertainty(models["mcdropout_transformer"], rows, n_samples=10)
    first, second = slice(0, 600), slice(600, None)
    part = lambda r, s: type(r)(r.mean[s], r.std[s], r.lower[s], r.upper[s], r.interval, r.method)  # noqa: E731
    scale = calibration_scale(part(result, first), y[first])
    raw = interval_report(part(result, second), y[second])["coverage"]
    calibrated = interval_report(widened(part(result, second), scale), y[second])["coverage"]
    assert abs(calibrated - 0.8) < 0.06 and abs(calibrated - 0.8) < abs(raw - 0.8), (raw, calibrated, scale)
