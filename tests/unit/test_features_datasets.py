"""Features and targets without look-ahead; splits with gaps and train-only scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.training_pipeline.common.windows import prepare_data, to_tf_dataset
from ml.training_pipeline.problems import build_target
from ml.training_pipeline.problems.price.features import FEATURE_NAMES, WARMUP_BARS, build_features
from ml.training_pipeline.problems.price.ohlcv import load_ohlcv


@pytest.fixture(scope="module")
def bars():
    return load_ohlcv("BTCUSDT", days=120).frame


def test_fifteen_finite_features(bars):
    features = build_features(bars)
    assert list(features.columns) == list(FEATURE_NAMES) and len(FEATURE_NAMES) == 15
    assert len(features) == len(bars) - WARMUP_BARS
    assert np.isfinite(features.to_numpy()).all()


def test_features_in_chunks_agree_with_the_whole_series():
    """A long series is computed in chunks warmed up on the bars before each: the exponential indicators agree
    exactly, the rolling sums (Bollinger's) to 1e-9, far below the float32 inputs' resolution."""
    bars = load_ohlcv("BTCUSDT").frame
    whole = build_features(bars, calendar=True, chunk_rows=None)
    chunked = build_features(bars, calendar=True, chunk_rows=5_000)
    assert list(chunked.columns) == list(whole.columns) and chunked.index.equals(whole.index)
    exact = ["log_return", "range", "rsi_14", "macd_diff", "atr_14", "close_to_ema_24", "momentum_24", "bar_hour_sin"]
    np.testing.assert_array_equal(chunked[exact].to_numpy(), whole[exact].to_numpy())
    np.testing.assert_allclose(chunked.to_numpy(), whole.to_numpy(), rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="chunk_rows must be a positive int or None. Received: chunk_rows=0"):
        build_features(bars, chunk_rows=0)


def test_features_have_no_look_ahead(bars):
    t = 1500
    tampered = bars.copy()
    tampered.iloc[t + 1:] = tampered.iloc[t + 1:].to_numpy() * np.linspace(0.5, 2.0, len(bars) - t - 1)[:, None]
    before, after = build_features(bars), build_features(tampered)
    cutoff = bars.index[t]
    pd.testing.assert_frame_equal(before.loc[:cutoff], after.loc[:cutoff])
    assert not np.allclose(before.loc[bars.index[t + 30]:].to_numpy(), after.loc[bars.index[t + 30]:].to_numpy())


def test_targets_look_exactly_horizon_bars_ahead():
    close = pd.Series([100.0, 110.0, 99.0, 99.0, 120.0])
    np.testing.assert_allclose(build_target(close, "return", 2).to_numpy()[:3], np.log([99 / 100, 99 / 110, 120 / 99]))
    assert np.isnan(build_target(close, "return", 2).iloc[-2:]).all()
    assert build_target(close, "direction", 1).tolist()[:4] == [1.0, 0.0, 0.0, 1.0]


def _prepare(bars, **kwargs):
    features = build_features(bars)
    close = bars["close"].reindex(features.index)
    target = build_target(bars["close"], "return", 1).reindex(features.index)
    return prepare_data(features, target, close, sequence_length=kwargs.pop("sequence_length", 48), horizon=1, **kwargs)


def test_splits_are_chronological_with_a_gap(bars):
    data = _prepare(bars)
    train, val, test = data.train, data.validation, data.test
    assert train.time[-1] < val.time[0] and val.time[-1] < test.time[0]
    # the first window of the next part starts after the last target of the previous one
    bar = pd.Timedelta(hours=1)
    assert val.time[0] - (48 - 1) * bar > train.time[-1] + bar
    assert test.time[0] - (48 - 1) * bar > val.time[-1] + bar
    assert data.train.x.shape[1:] == (48, 15) and data.train.x.dtype == np.float32
    np.testing.assert_allclose(test.future_close, bars["close"].shift(-1).reindex(test.time).to_numpy())


def test_scaler_is_fitted_on_training_rows_only(bars):
    reference = _prepare(bars)
    changed = bars.copy()
    cut = int(len(bars) * 0.7)
    changed.iloc[cut:] = changed.iloc[cut:].to_numpy() * 3.0  # validation and test rows only
    assert _prepare(changed).scaler == reference.scaler
    # scaled training rows are centred; later rows are not (the market moved)
    np.testing.assert_allclose(reference.train.x[:, -1].mean(0), 0.0, atol=0.1)


def test_target_scaler_round_trip(bars):
    data = _prepare(bars, scale_target=True)
    scaled = data.fit_targets(data.train)
    assert abs(scaled.mean()) < 1e-3 and abs(scaled.std() - 1) < 1e-2
    np.testing.assert_allclose(data.to_target(scaled), data.train.y, atol=1e-6)


def test_too_few_rows_is_a_clear_error(bars):
    with pytest.raises(ValueError, match=r"Too few rows: .* sequence_length=60, horizon=1 .* Use more data"):
        _prepare(bars.iloc[:400], sequence_length=60)


def test_only_training_data_is_shuffled(bars):
    data = _prepare(bars)
    ordered = np.concatenate([y.numpy() for _, y in to_tf_dataset(data.test.x, data.test.y, 64, shuffle=False)])
    np.testing.assert_array_equal(ordered, data.test.y)
    shuffled = np.concatenate([y.numpy() for _, y in to_tf_dataset(data.train.x, data.train.y, 64, shuffle=True, seed=1)])
    assert not np.array_equal(shuffled, data.train.y) and np.allclose(np.sort(shuffled), np.sort(data.train.y))
