"""Grouped training: sample weights from groups and classes, curriculum phases, per-group reports,
log2-MSE, interpolation within groups, the m-height routine and data, and several symbols in `atb`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.examples import mheight
from ml.training_pipeline.common.sample_weights import class_weights, group_weights, sample_weights
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.fitting.curriculum import Phase, check_phases, parse_curriculum
from ml.training_pipeline.problems import ArraysProblem

# --- weights ---------------------------------------------------------------------------------

def test_group_weights_from_a_dict_by_frequency_and_by_callable_have_mean_one_on_the_fit_rows():
    groups = np.array(["easy"] * 6 + ["hard"] * 2)
    by_dict = group_weights(groups, {"easy": 1.0, "hard": 5.0})
    assert by_dict.mean() == pytest.approx(1.0) and by_dict[-1] / by_dict[0] == pytest.approx(5.0)
    balanced = group_weights(groups, "balanced")
    assert balanced[groups == "easy"].sum() == pytest.approx(balanced[groups == "hard"].sum())
    by_callable = group_weights(groups, lambda g: 2.0 if g == "hard" else 1.0, fit_rows=np.arange(4))
    assert by_callable[:4].mean() == pytest.approx(1.0) and by_callable[-1] == pytest.approx(2.0)
    combined = sample_weights(8, groups=groups, group_spec={"hard": 5.0}, y=[0, 1] * 4, pos_weight=3.0)
    raw = np.where(groups == "hard", 5.0, 1.0) * np.where(np.array([0, 1] * 4) == 1, 3.0, 1.0)
    np.testing.assert_allclose(combined, raw / raw.mean())
    np.testing.assert_allclose(class_weights([0, 0, 0, 1], "balanced") * 4 / 4, [2 / 3, 2 / 3, 2 / 3, 2.0])


@pytest.mark.parametrize("spec, message", [
    ({"easy": 1.0, "medium": 2.0}, "names the group 'medium', which the data does not have"),
    ({"easy": -1.0}, "values must be numbers >= 0"),
    ("inverse", "must be a dict, 'balanced' or a callable"),
    ({"easy": 0.0, "hard": 0.0}, "must not all be 0"),
])
def test_bad_group_weights_are_refused_in_one_line(spec, message):
    with pytest.raises(ValueError, match=message) as error:
        group_weights(np.array(["easy", "hard"]), spec)
    assert "\n" not in str(error.value)


def test_weights_scale_the_keras_loss_exactly_as_documented():
    """Keras reduces a batch to sum(w_i * loss_i) / B: the documented contract of `weights`."""
    import keras

    from ml.training_pipeline.models.losses import Log2MSE

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype("float32")
    y = np.exp(rng.standard_normal(32)).astype("float32")
    groups = np.where(np.arange(32) < 24, "easy", "hard")
    w = group_weights(groups, {"easy": 1.0, "hard": 5.0})
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="exponential")(inputs))
    model.compile(loss=Log2MSE())
    predicted = model.predict(x, verbose=0)[:, 0]
    per_row = (np.log2(y) - np.log2(predicted)) ** 2
    weighted = model.evaluate(x, y, sample_weight=w, batch_size=32, verbose=0)
    assert weighted == pytest.approx(np.sum(w * per_row) / 32, rel=1e-5)
    assert model.evaluate(x, y, batch_size=32, verbose=0) == pytest.approx(per_row.mean(), rel=1e-5)


def test_log2_mse_metric_is_the_weighted_mean():
    from ml.training_pipeline.models.losses import Log2MSEMetric

    metric = Log2MSEMetric()
    metric.update_state(np.array([[8.0], [1.0]]), np.array([[2.0], [1.0]]), sample_weight=np.array([3.0, 1.0]))
    assert float(metric.result()) == pytest.approx(3 * 4.0 / 4)


# --- curriculum ------------------------------------------------------------------------------

def test_curriculum_strings_parse_and_bad_phases_are_refused():
    assert parse_curriculum("a+b:5,all:10@1e-4") == (Phase(("a", "b"), 5), Phase(None, 10, 1e-4))
    for text, message in [("a:5,zzz:3", "names the group 'zzz'"), ("a:0,all:3", "must run >= 1 epoch"),
                          ("a:-2", "must run >= 1 epoch"), ("a:x", "epochs must be an integer"),
                          ("a", "GROUPS:EPOCHS"), ("all+a:3", "write 'all' alone"), ("", "GROUPS:EPOCHS")]:
        with pytest.raises(ValueError, match=message):
            check_phases(text, ["a", "b"])


def test_a_curriculum_is_one_run_with_phases_and_one_optimizer():
    import keras

    from ml.training_pipeline.fitting.curriculum import fit_curriculum

    rng = np.random.default_rng(1)
    x = rng.standard_normal((96, 4)).astype("float32")
    y = (x[:, 0] * 2).astype("float32")
    groups = np.where(np.arange(96) < 64, "easy", "hard")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    history = fit_curriculum(model, x, y, groups=groups, phases="easy:2,all:3@5e-3", batch_size=32,
                             validation_data=(x[:16], y[:16]), verbose=0)
    assert history["phase"] == [1, 1, 2, 2, 2] and history["phase_label"][0] == "easy"
    assert len(history["loss"]) == len(history["val_loss"]) == 5
    # the optimizer's step counter runs on across phases: 2 epochs x 2 batches + 3 epochs x 3 batches
    assert int(model.optimizer.iterations.numpy()) == 2 * 2 + 3 * 3
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(5e-3)


def test_early_stopping_acts_in_the_last_phase_only():
    import keras

    from ml.training_pipeline.fitting.curriculum import fit_curriculum

    x = np.zeros((40, 2), "float32")
    y = np.zeros(40, "float32")
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="zeros")(inputs))
    model.compile(optimizer="sgd", loss="mse")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1)  # val_loss never improves on 0
    history = fit_curriculum(model, x, y, groups=["a"] * 40, phases="a:4,all:6", validation_data=(x, y),
                             final_callbacks=[stop], verbose=0)
    assert history["phase"].count(1) == 4 and 1 <= history["phase"].count(2) < 6


# --- per-group evaluation and augmentation ----------------------------------------------------

def test_per_group_metrics_match_a_direct_computation(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 3)).astype("float32")
    groups = np.array(["a", "b", "c", "d"] * 100)
    y = x[:, 0] + (groups == "d") * 3
    problem = ArraysProblem(x, y, name="grouped", groups=groups)
    config = TrainingConfig(symbol="G", model_type="lightgbm", variant="tiny", models_dir=str(tmp_path))
    data = problem.prepare(config)
    predictions = data.test.inputs["inputs"][:, 0].astype(np.float64)  # ignores group d's offset
    report = problem.evaluate(predictions, data)
    for g in "abcd":
        rows = data.test.groups == g
        error = predictions[rows] - data.test.y[rows]
        assert report["by_group"][g]["model"]["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-6)
        assert report["by_group"][g]["n"] == rows.sum()
    assert report["groups"]["worst"] == "d" and report["groups"]["spread"] == pytest.approx(
        report["by_group"]["d"]["model"]["rmse"] - report["groups"]["best_value"])
    train_mean = {g: data.train.y[data.train.groups == g].mean() for g in "abcd"}
    assert data.schema["group_baselines"]["d"][0] == pytest.approx(train_mean["d"], rel=1e-5)
    assert "group_prior" in report and "<- worst" in __import__(
        "ml.training_pipeline.common.metrics", fromlist=["format_report"]).format_report(report)


def test_interpolation_stays_within_a_group_and_rejects_rows_outside_its_range():
    from ml.training_pipeline.problems.augmentation import interpolate_within_groups

    # group "u": two rows whose mixes have a smaller row std than either row, so they are rejected
    x = np.array([[1.0, -1.0], [-1.0, 1.0], [0.0, 1.0], [0.5, 1.5], [1.0, 2.0]], "float32")
    y = np.array([1.0, 1.0, 2.0, 3.0, 4.0])
    groups = np.array(["u", "u", "v", "v", "v"])
    out = interpolate_within_groups({"x": x}, y, groups, 200, seed=0, log_target=True)
    assert out.report["by_group"]["u"]["rejected"] > 0 and out.report["candidates"] == 200
    assert set(out.groups) <= {"u", "v"}
    for g, parent in zip(out.groups, out.parents, strict=True):
        assert groups[parent] == g
    v = out.groups == "v"
    assert np.all((out.y[v] >= 2.0) & (out.y[v] <= 4.0))
    with pytest.raises(ValueError, match="same rows"):
        interpolate_within_groups({"x": x}, y[:3], groups, 5)


def test_feature_noise_is_active_in_training_only():
    from ml.training_pipeline.layers import FeatureNoise

    x = np.random.default_rng(0).standard_normal((64, 5)).astype("float32")
    layer = FeatureNoise(0.5, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    noisy = np.asarray(layer(x, training=True)) - x
    assert 0.3 < noisy.std() / x.std() < 0.7


# --- m-height --------------------------------------------------------------------------------

def test_m_height_of_a_one_row_code_has_its_closed_form():
    rng = np.random.default_rng(3)
    for n, m in [(4, 1), (5, 2), (6, 3)]:
        P = rng.standard_normal((1, n - 1))
        sorted_row = np.sort(np.abs(np.concatenate([[1.0], P[0]])))[::-1]
        assert mheight.m_height(P, m) == pytest.approx(sorted_row[0] / sorted_row[m], rel=1e-7)
    # c = u (1, 1, 0, 0): |c_(0)| / |c_(1)| = 1, and c_(2) = 0 makes h_2 infinite
    assert mheight.m_height(np.array([[1.0, 0.0, 0.0]]), 1) == pytest.approx(1.0)
    assert mheight.m_height(np.array([[1.0, 0.0, 0.0]]), 2) == float("inf")


def test_m_height_agrees_with_the_literal_family_and_bounds_every_sampled_codeword():
    rng = np.random.default_rng(4)
    for k, n, m in [(2, 5, 2), (3, 6, 2), (2, 6, 3)]:
        P = rng.standard_normal((k, n - k))
        height = mheight.m_height(P, m)
        assert height == pytest.approx(mheight.m_height_by_signs(P, m), rel=1e-6)
        sampled = max(mheight.codeword_height(P, u, m) for u in rng.standard_normal((4000, k)))
        assert sampled <= height * (1 + 1e-9)
        if k == 2:  # in two dimensions random directions come close to the worst codeword
            assert sampled >= 0.9 * height


def test_canonical_form_is_one_representative_with_the_same_height():
    rng = np.random.default_rng(6)
    P = rng.standard_normal((4, 5))
    shuffled = P[rng.permutation(4)][:, rng.permutation(5)] * rng.choice([-1.0, 1.0], size=(4, 1)) * rng.choice(
        [-1.0, 1.0], size=(1, 5))
    np.testing.assert_allclose(mheight.canonical_form(shuffled), mheight.canonical_form(P))
    assert mheight.m_height(mheight.canonical_form(P), 3) == pytest.approx(mheight.m_height(P, 3), rel=1e-9)
    assert np.all(mheight.canonical_form(P)[:, 0] >= 0) and np.all(mheight.canonical_form(P)[0] >= 0)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(P=[np.zeros((4, 4))] + list(f["P"][1:])), r"Row 0: P must be k x \(n-k\) = 4 x 5"),
    (lambda f: f.assign(m_height=[-1.0] + list(f["m_height"][1:])), "Row 0: m_height must be finite and >= 1"),
    (lambda f: f.drop(columns="m"), "lacks column 'm'"),
])
def test_bad_m_height_tables_are_refused(tmp_path, change, message):
    frame = mheight.load_table().groupby(["k", "m"]).head(3).reset_index(drop=True)
    bad = change(frame.copy())
    path = tmp_path / "bad.pkl"
    bad.to_pickle(path)
    with pytest.raises(ValueError, match=message):
        mheight.load_table(path)
    text_file = tmp_path / "table.txt"
    text_file.write_text("n,k,m,P,m_height\n")
    with pytest.raises(ValueError, match="are .pkl, .parquet, .csv"):
        mheight.load_table(text_file)


def test_the_bundled_m_height_set_has_every_group_and_exact_heights():
    frame = mheight.load_table()
    assert set(zip(frame["k"], frame["m"], strict=True)) == set(mheight.GROUPS) and set(frame["n"]) == {9}
    assert frame.groupby(["k", "m"]).size().min() >= 30
    row = frame.iloc[7]
    assert mheight.m_height(row["P"], int(row["m"])) == pytest.approx(row["m_height"], rel=1e-6)


def test_grouped_m_height_training_with_weights_curriculum_and_the_gated_model(tmp_path):
    from ml.training_pipeline.pipeline import train

    frame = mheight.load_table().groupby(["k", "m"]).head(40).reset_index(drop=True)
    problem = mheight.mheight_problem(frame, interpolate=0.5)
    config = TrainingConfig(symbol="MHEIGHT", model_type="complexity_gated", variant="tiny", batch_size=64,
                            models_dir=str(tmp_path), group_weights={"k4_m5": 5.0, "k5_m4": 3.0},
                            curriculum="k4_m2+k5_m2+k6_m2:2,all:2")
    result = train(config, verbose=0, problem=problem)
    assert result.history["phase"] == [1, 1, 2, 2]
    report = result.report
    assert set(report["by_group"]) <= {mheight.group_name(k, m) for k, m in mheight.GROUPS}
    assert {"model", "train_prior", "group_prior"} <= set(report) and "log2_mse" in report["model"]
    assert report["groups"]["worst"] in report["by_group"] and result.onnx["max_scaled_diff"] < 1e-4
    meta = json.loads((result.version_dir / "metadata.json").read_text())
    grouping = meta["grouping"]
    assert grouping["group_weights"] == {"k4_m5": 5.0, "k5_m4": 3.0} and len(grouping["curriculum"]) == 2
    assert grouping["mean_weight"]["k4_m5"] > grouping["mean_weight"]["k4_m2"]
    assert meta["data"]["augmentation"]["accepted"] > 0
    assert (result.version_dir / "per_group.png").is_file()
    stored_report = meta["metrics"]
    assert stored_report["by_group"] == json.loads(json.dumps(report["by_group"]))


@pytest.mark.parametrize("kwargs, message", [
    ({"group_weights": {"k9_m9": 2.0}}, "names the group 'k9_m9'"),
    ({"curriculum": "k9_m9:2,all:2"}, "names the group 'k9_m9'"),
    ({"curriculum": "all:0"}, "must run >= 1 epoch"),
])
def test_bad_grouping_fails_before_training_and_stores_nothing(tmp_path, kwargs, message):
    from ml.training_pipeline.pipeline import train

    frame = mheight.load_table().groupby(["k", "m"]).head(12).reset_index(drop=True)
    with pytest.raises(ValueError, match=message):
        config = TrainingConfig(symbol="MHEIGHT", model_type="complexity_gated", variant="tiny",
                                models_dir=str(tmp_path), **kwargs)
        train(config, verbose=0, problem=mheight.mheight_problem(frame))
    assert not any(tmp_path.iterdir())


def test_a_curriculum_for_a_tree_model_is_refused(tmp_path):
    from ml.training_pipeline.pipeline import train

    x = np.random.default_rng(0).standard_normal((200, 3)).astype("float32")
    problem = ArraysProblem(x, x[:, 0], name="trees", groups=np.array(["a", "b"] * 100))
    config = TrainingConfig(symbol="T", model_type="lightgbm", variant="tiny", curriculum="a:2,all:2",
                            models_dir=str(tmp_path))
    with pytest.raises(ValueError, match="cannot train in curriculum phases"):
        train(config, verbose=0, problem=problem)
    assert not any(tmp_path.iterdir())


# --- several symbols through atb -------------------------------------------------------------


@pytest.fixture(scope="module")
def second_symbol_file(btc_hourly, tmp_path_factory):
    """A second market for the two-symbol run: real BTCUSDT bars of 2020, written as its own file
    (this repository ships one market; the bundled sample's last year is the other symbol)."""
    path = tmp_path_factory.mktemp("data") / "eth_1h.csv"
    frame = btc_hourly.loc["2020-01-01":"2020-12-31"].copy()
    frame.insert(0, "time", frame.index.astype("int64") // 10**6)
    frame.to_csv(path, index=False)
    return path


def test_two_symbols_in_one_model_through_atb(tmp_path, atb, second_symbol_file):
    root = tmp_path / "models"
    code, out, err = atb("train", "model", "BTCUSDT", "ETHUSDT", "--model-type", "tcn", "--variant", "tiny",
                         "--days", "200", "--sequence-length", "24", "--data", f"ETHUSDT={second_symbol_file}",
                         "--group-weights", "ETHUSDT=2", "--curriculum", "BTCUSDT:1,all:2", "--models-dir", root)
    assert code == 0, err
    assert "per group" in out and "BTCUSDT" in out and "ETHUSDT" in out and "in 2 curriculum phases" in out
    version = (root / "BTCUSDT-ETHUSDT" / "price" / "latest").resolve()
    meta = json.loads((version / "metadata.json").read_text())
    assert meta["config"]["symbols"] == ["ETHUSDT"] and meta["grouping"]["group_weights"] == {"ETHUSDT": 2.0}
    assert meta["grouping"]["mean_weight"]["ETHUSDT"] == pytest.approx(2 * meta["grouping"]["mean_weight"]["BTCUSDT"])
    assert [p["epochs"] for p in meta["grouping"]["curriculum"]] == [1, 2]
    for symbol in ("BTCUSDT", "ETHUSDT"):  # each symbol next to its own baselines
        own = meta["metrics"]["by_group"][symbol]
        assert own["skill"] == pytest.approx(1 - own["model"]["rmse"] / own["persistence"]["rmse"])
    assert meta["metrics"]["by_group"]["ETHUSDT"]["persistence"] != meta["metrics"]["by_group"]["BTCUSDT"]["persistence"]

    code, out, err = atb("predict", "ETHUSDT", "--data", second_symbol_file, "--models-dir", root, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["symbol"] == "ETHUSDT" and result["stored_as"] == "BTCUSDT-ETHUSDT"
    assert result["last_close"] == pytest.approx(float(pd.read_csv(second_symbol_file)["close"].iloc[-1]))
    code, _, err = atb("predict", "SOLUSDT", "--models-dir", root)
    assert code == 2 and "No stored model for SOLUSDT" in err


@pytest.mark.parametrize("extra, message", [
    (["--group-weights", "SOLUSDT=2"], "names the group 'SOLUSDT'"),
    (["--curriculum", "SOLUSDT:1,all:1"], "names the group 'SOLUSDT'"),
    (["--curriculum", "BTCUSDT:0"], "must run >= 1 epoch"),
    (["--group-weights", "ETHUSDT=two"], "GROUP=NUMBER"),
])
def test_bad_several_symbol_options_exit_2_and_store_nothing(tmp_path, atb, second_symbol_file, extra, message):
    root = tmp_path / "models"
    code, _, err = atb("train", "model", "BTCUSDT", "ETHUSDT", "--model-type", "tcn", "--variant", "tiny",
                       "--data", f"ETHUSDT={second_symbol_file}", "--models-dir", root, *extra)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not root.exists()
