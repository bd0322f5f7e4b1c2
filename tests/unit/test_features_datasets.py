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


def _batches(dataset) -> list[np.ndarray]:
    return [np.asarray(x) for x, _ in dataset]


@pytest.mark.parametrize("gather_in_numpy", [False, True])
def test_windows_with_holes_are_starts_in_their_rows_and_train_as_their_copy(gather_in_numpy, monkeypatch):
    """Known windows with a gap (an extra missing mid-series) stay starts in the scaled rows: each batch is cut from
    the rows (by TensorFlow, or by NumPy for big rows), in the order a copy of the windows would give."""
    from ml.training_pipeline.common import windows as module

    if gather_in_numpy:
        monkeypatch.setattr(module, "GATHER_IN_NUMPY_BYTES", 0)
    from ml.training_pipeline.common.tensors import check_named_inputs
    from ml.training_pipeline.common.windows import GatheredWindows, cut_per_batch, sliding_windows, windows_for_rows
    from ml.training_pipeline.models.registry import TensorSpec

    rng = np.random.default_rng(0)
    scaled = rng.standard_normal((400, 3)).astype(np.float32)
    close = pd.Series(np.linspace(100, 120, 400), index=pd.date_range("2024-01-01", periods=400, freq="h"))
    extras = pd.DataFrame({"funding": np.where(np.arange(400) % 97 == 5, np.nan, 1.0)}, index=close.index)
    windows = windows_for_rows(scaled, np.ones(400), close, 1, 20, 0, 399, extras)
    assert isinstance(windows.x, GatheredWindows) and cut_per_batch(windows.x)
    dense = np.asarray(windows.x)
    ends = windows.x.starts + 19
    assert dense.shape == (len(windows.y), 20, 3) == windows.x.shape and not np.isnan(extras["funding"].iloc[ends]).any()
    assert np.array_equal(dense[7], scaled[windows.x.starts[7]:windows.x.starts[7] + 20])
    assert np.array_equal(windows.x[[3, 9]], dense[[3, 9]]) and np.array_equal(windows.x[:, -1], dense[:, -1])
    checked = check_named_inputs(windows.x, [TensorSpec("inputs", (20, 3), "float32")])["inputs"]
    assert isinstance(checked, GatheredWindows)  # checked on its rows, never expanded
    unused, used = scaled.copy(), scaled.copy()
    unused[windows.x.starts[0] - 1 if windows.x.starts[0] else -1] = np.nan  # a row no window holds
    used[windows.x.starts[5] + 19, 1] = np.inf
    assert GatheredWindows(unused, windows.x.starts, 20).all_finite()
    with pytest.raises(ValueError, match=r"inputs\['inputs'\] contains NaN or inf"):
        check_named_inputs(GatheredWindows(used, windows.x.starts, 20), [TensorSpec("inputs", (20, 3), "float32")])
    view = sliding_windows(scaled, 20, copy=False)[:len(windows.y)]
    for shuffle in (False, True):
        copied = _batches(to_tf_dataset(dense, windows.y, 64, shuffle=shuffle, seed=3))
        cut = _batches(to_tf_dataset(windows.x, windows.y, 64, shuffle=shuffle, seed=3))
        assert all(np.array_equal(a, b) for a, b in zip(cut, copied, strict=True))
        from_view = _batches(to_tf_dataset(view, windows.y, 64, shuffle=shuffle, seed=3))
        view_copy = _batches(to_tf_dataset(np.ascontiguousarray(view), windows.y, 64, shuffle=shuffle, seed=3))
        assert all(np.array_equal(a, b) for a, b in zip(from_view, view_copy, strict=True))


def test_pooled_symbols_are_starts_in_their_joined_rows_with_no_window_across_a_border():
    from ml.training_pipeline.common.windows import GatheredWindows, flat_column_chunks, flat_columns, sliding_windows

    first, second = np.arange(30.0, dtype=np.float32).reshape(10, 3), -np.arange(24.0, dtype=np.float32).reshape(8, 3)
    views = [sliding_windows(first, 4, copy=False)[2:], sliding_windows(second, 4, copy=False)]
    pooled = GatheredWindows.pooled(views)
    expected = np.concatenate([np.asarray(v) for v in views])
    assert np.array_equal(np.asarray(pooled), expected) and len(pooled.rows) == 8 + 8  # the rows behind each view
    assert pooled.runs() == [(0, 5), (5, 10)]
    chunks = flat_column_chunks(pooled)
    assert [len(c) for c in chunks[0]] == [5, 5]
    assert all(np.array_equal(np.concatenate(c), d) for c, d in zip(chunks, flat_columns(expected), strict=True))
    assert GatheredWindows.pooled([expected, views[1]]) is None  # a plain copy is concatenated as before
    with pytest.raises(ValueError, match="Window starts must lie in"):
        GatheredWindows(first, np.array([0, 8]), 4)


def test_the_keras_kind_predicts_windows_held_as_starts_as_it_predicts_their_copy():
    from ml.training_pipeline.common.windows import GatheredWindows
    from ml.training_pipeline.models import create_model
    from ml.training_pipeline.models.kinds.keras_kind import KerasKind

    rng = np.random.default_rng(1)
    rows = rng.standard_normal((2500, 15)).astype(np.float32)  # more windows than one predict batch (1,024)
    windows = GatheredWindows(rows, np.concatenate([np.arange(0, 1000), np.arange(1100, 2400)]), 60)
    model = create_model("tcn", (60, 15), variant="tiny")
    kind = KerasKind()
    for picked in (windows, GatheredWindows(rows, windows.starts[:5], 60)):  # batches cut per batch, and one batch
        assert np.allclose(kind.predict(model, {"inputs": picked}), kind.predict(model, {"inputs": np.asarray(picked)}),
                           atol=1e-6)


def test_many_windows_are_shuffled_by_one_permutation_per_epoch_seeded_and_complete(monkeypatch):
    """Above SHUFFLE_BY_PERMUTATION_WINDOWS the order is a permutation tensor per pass (tf.data's shuffle buffer holds
    ~200 bytes a window): every window once per epoch, a new order each epoch, the same orders for a seed, and the
    curriculum's subset and repeat() alike."""
    from ml.training_pipeline.common import windows as module
    from ml.training_pipeline.common.windows import sliding_windows

    monkeypatch.setattr(module, "SHUFFLE_BY_PERMUTATION_WINDOWS", 10)
    rows = np.arange(300.0, dtype=np.float32).reshape(100, 3)
    x = sliding_windows(rows, 5, copy=False)  # 96 windows; window i starts with the value 3 * i
    y = np.arange(len(x), dtype=np.float32)

    dataset = to_tf_dataset(x, y, 16, shuffle=True, seed=7)
    first, second = [np.concatenate([b[1].numpy() for b in dataset]) for _ in range(2)]
    assert sorted(first) == sorted(second) == list(y) and first.tolist() != second.tolist()
    for batch_x, batch_y in dataset.take(2):  # each window still goes with its own target
        assert np.array_equal(batch_x.numpy()[:, 0, 0], 3 * batch_y.numpy())
    again = to_tf_dataset(x, y, 16, shuffle=True, seed=7)
    assert [np.concatenate([b[1].numpy() for b in again]).tolist() for _ in range(2)] == [first.tolist(), second.tolist()]
    subset = np.arange(20, 60)
    picked = np.concatenate([b[1].numpy() for b in to_tf_dataset(x, y, 16, shuffle=True, seed=7, rows=subset)])
    assert sorted(picked) == list(subset) and picked.tolist() != list(subset)
    endless = to_tf_dataset(x, y, 16, shuffle=True, seed=7, repeat=True)
    passes = np.concatenate([b[1].numpy() for b in endless.take(12)])  # two passes of 96
    assert sorted(passes[:96]) == sorted(passes[96:]) == list(y) and passes[:96].tolist() != passes[96:].tolist()
