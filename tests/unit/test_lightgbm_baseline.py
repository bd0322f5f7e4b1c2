"""The LightGBM baseline on real BTCUSDT data: features without look-ahead, training, export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.training_pipeline.models import create_model
from ml.training_pipeline.models_lightgbm import (
    create_lightgbm_model,
    engineer_features_for_lgb,
    get_feature_importance,
    train_lightgbm_with_early_stopping,
)


@pytest.fixture(scope="module")
def prices(btc_hourly):
    return btc_hourly.iloc[-3000:].copy()


@pytest.fixture(scope="module")
def dataset(prices):
    features_df, names = engineer_features_for_lgb(prices)
    features = features_df[names].dropna()
    # next-bar return, aligned to the row that predicts it
    target = prices["close"].pct_change().shift(-1).reindex(features.index)
    keep = target.notna()
    X, y = features[keep], target[keep]
    cut_train, cut_val = int(len(X) * 0.7), int(len(X) * 0.85)
    return X, y, cut_train, cut_val


def test_features_have_no_look_ahead(prices):
    """Changing every row after t leaves the features up to t untouched."""
    prices = prices.astype("float64")
    features_df, names = engineer_features_for_lgb(prices)
    t = 2000
    tampered = prices.copy()
    tampered.iloc[t + 1:, :] = tampered.iloc[t + 1:, :].to_numpy() * 1.7
    changed_df, _ = engineer_features_for_lgb(tampered)
    features, changed = features_df[names], changed_df[names]
    cutoff = prices.index[t]
    pd.testing.assert_frame_equal(features.loc[:cutoff], changed.loc[:cutoff])
    assert not features.loc[prices.index[t + 5]:].equals(changed.loc[prices.index[t + 5]:])


def test_features_are_finite_and_named(prices):
    features_df, names = engineer_features_for_lgb(prices, lags=(1, 3), windows=(6, 24))
    assert list(features_df.columns[:len(prices.columns)]) == list(prices.columns)  # the prices stay beside them
    features = features_df[names].dropna()
    assert len(features) == len(prices) - 24 and features_df[names].iloc[:24].isna().all().all()
    assert {"return_1", "return_lag_3", "return_std_24", "close_to_mean_6", "range", "log_volume_change"} <= set(names)
    assert np.isfinite(features.to_numpy()).all()


@pytest.mark.parametrize(
    "frame,message",
    [(pd.DataFrame({"open": [1.0, 2.0]}), r"needs a 'close' column\. Received columns: \['open'\]"),
     (pd.DataFrame({"close": [1.0, -2.0]}), r"must be positive"),
     ([1, 2, 3], r"must be a pandas DataFrame\. Received: list")],
)
def test_feature_errors(frame, message):
    with pytest.raises(ValueError, match=message):
        engineer_features_for_lgb(frame)


def test_trains_with_early_stopping_and_ranks_features(dataset):
    X, y, a, b = dataset
    model = create_model("lightgbm", input_shape=(X.shape[1],), variant="lightweight", n_estimators=400)
    model = train_lightgbm_with_early_stopping(model, X[:a], y[:a], X[a:b], y[a:b], early_stopping_rounds=20)
    assert 1 <= model.best_iteration_ <= 400
    importance = get_feature_importance(model, list(X.columns), top_n=5)
    assert list(importance.columns) == ["feature", "importance", "gain", "share"]
    assert len(importance) == 5 and importance["gain"].is_monotonic_decreasing
    assert set(importance["feature"]) <= set(X.columns)


def test_classifier_and_onnx_parity_for_both_tasks(dataset, tmp_path):
    from ml.training_pipeline.export import OnnxPredictor, export_onnx

    X, y, a, b = dataset
    for task, target in (("regression", y), ("binary", (y > 0).astype(int))):
        model = create_model("lightgbm", input_shape=(X.shape[1],), variant="lightweight", task=task)
        train_lightgbm_with_early_stopping(model, X[:a], target[:a], X[a:b], target[a:b])
        sample = X[b:].to_numpy(np.float32)
        report = export_onnx(model, tmp_path / f"{task}.onnx", sample=sample)
        assert report.max_abs_diff < 1e-4
        onnx_out = OnnxPredictor(report.path).predict(sample)
        expected = model.predict_proba(sample) if task == "binary" else model.predict(sample)
        np.testing.assert_allclose(onnx_out.reshape(expected.shape), expected, atol=1e-4)


def test_training_input_errors(dataset):
    X, y, a, b = dataset
    model = create_model("lightgbm", input_shape=(X.shape[1] + 1,), variant="lightweight")
    with pytest.raises(ValueError, match=rf"X_train must have {X.shape[1] + 1} feature columns"):
        train_lightgbm_with_early_stopping(model, X[:a], y[:a], X[a:b], y[a:b])
    model = create_lightgbm_model("regression")
    with pytest.raises(ValueError, match="same number of rows"):
        train_lightgbm_with_early_stopping(model, X[:a], y[: a - 1], X[a:b], y[a:b])
    with pytest.raises(ValueError, match="needs a fitted LightGBM model"):
        get_feature_importance(model, list(X.columns))


def test_windowed_input_shape_is_flattened():
    model = create_model("lightgbm", input_shape=(10, 3), variant="lightweight", n_estimators=5)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 10, 3)), rng.standard_normal(200)
    train_lightgbm_with_early_stopping(model, x[:150], y[:150], x[150:], y[150:])
    assert model.n_features_in_ == 30
