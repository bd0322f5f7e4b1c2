"""The architecture benchmark suite of the user's guide (opt-in: it trains every model for real).

Run: ``pytest tests/benchmark/test_model_architectures.py -m benchmark -v -s`` (``-s`` shows the tables;
naming this file runs it without ``-m`` too). Every model is trained on the same chronological
splits of the bundled BTCUSDT hourly klines (last :data:`DAYS` days) with the same budget and seed,
and judged on the same test bars as the naive baselines. Results, a plot and a docs page go to
``benchmark_results/`` (``ATB_BENCHMARK_DIR`` moves it).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest

from ml.training_pipeline.comparison import (
    BenchmarkConfig,
    Comparison,
    benchmark_model,
    describe_setup,
    docs_page,
    load_benchmark_data,
    window_models,
)

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]
logger = logging.getLogger(__name__)

DAYS, EPOCHS, PATIENCE = 365, 30, 8
OUT = Path(os.environ.get("ATB_BENCHMARK_DIR", "benchmark_results"))


@pytest.fixture(scope="session")
def benchmark_data():
    """``X_train, y_train, X_val, y_val`` (unpackable) of BTCUSDT 1h, last 365 days; the test part rides along."""
    return load_benchmark_data("BTCUSDT", days=DAYS)


@pytest.fixture(scope="session")
def benchmark_config(benchmark_data):
    """The same training budget, seed and test bars for every model; the ceiling measured once."""
    from ml.training_pipeline.common.hardware import measured_peak

    return BenchmarkConfig(epochs=EPOCHS, patience=PATIENCE, data=benchmark_data, peak=measured_peak())


_RESULTS: dict[tuple[str, str], object] = {}


def _measured(name: str, variant: str, data, config: BenchmarkConfig):
    """One training per model and variant per session: the tests share the rows they have in common."""
    if (name, variant) not in _RESULTS:
        _RESULTS[name, variant] = benchmark_model(name, variant, *data, config)
    return _RESULTS[name, variant]


def _check(result, config: BenchmarkConfig) -> None:
    assert result.evaluated_on == "test"
    assert all(math.isfinite(v) for v in (result.rmse, result.mae, result.mape, result.skill))
    assert 0.0 <= result.directional_accuracy <= 1.0 and result.params > 0 and result.train_s > 0


def test_attention_lstm_vs_baseline(benchmark_data, benchmark_config):
    """Attention-LSTM against the CNN-LSTM baseline, the plain LSTM and the naive forecasts, on the same bars."""
    results = [_measured(name, "default", benchmark_data, benchmark_config) for name in ("attention_lstm", "cnn_lstm", "lstm")]
    comparison = Comparison(results, benchmark_data.baselines(), {"symbol": "BTCUSDT"})
    print("\n=== Attention-LSTM vs baselines (BTCUSDT 1h test bars) ===\n" + comparison.table())
    for result in results:
        _check(result, benchmark_config)
    attention, cnn_lstm, lstm = results
    logger.info("attention_lstm RMSE %.2f vs cnn_lstm %.2f vs lstm %.2f vs persistence %.2f", attention.rmse,
                cnn_lstm.rmse, lstm.rmse, benchmark_data.baselines()["persistence"]["rmse"])
    # honest expectation on hourly returns: no model is far from persistence, none is wildly worse
    assert attention.skill > -0.05


def test_comprehensive_model_comparison(benchmark_data, benchmark_config):
    """Every registered model that reads a price window, one table, saved as JSON, CSV, plot and docs page."""
    results = []
    for name in window_models():
        result = _measured(name, "default", benchmark_data, benchmark_config)
        _check(result, benchmark_config)
        results.append(result)
    comparison = Comparison(results, benchmark_data.baselines(),
                            describe_setup(benchmark_data, benchmark_config, "default"))
    paths = comparison.save(OUT)
    (OUT / "benchmarks.md").write_text(docs_page(comparison, "comparison.png"))
    print("\n=== Comprehensive Model Architecture Comparison ===\n" + comparison.table())
    print("\n=== Best Performers ===\n" + "\n".join(f"Best {k}: {v}" for k, v in comparison.best().items()))
    assert {r.model for r in results} == set(window_models())
    assert Comparison.load(paths["json"]).results == results  # the JSON holds what was measured
    # every model was judged on the bars the baselines were
    assert len({r.evaluated_on for r in results}) == 1


_LOAD_AND_PREDICT = """
import os, sys, time, json, numpy as np, psutil
import tensorflow as tf
import ml.training_pipeline.layers  # the library's layers, as the guide's import of models_* does
process = psutil.Process(os.getpid())
window = np.load(sys.argv[2])
before = process.memory_info().rss
model = tf.keras.models.load_model(sys.argv[1])
model.predict(window, verbose=0)
after = process.memory_info().rss
times = []
for _ in range(100):
    start = time.perf_counter()
    model.predict(window, verbose=0)
    times.append((time.perf_counter() - start) * 1000)
print(json.dumps({"loaded_mb": (after - before) / 2**20, "mean_ms": float(np.mean(times)),
                  "p50_ms": float(np.median(times))}))
"""


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_inference_speed_benchmark(benchmark_data, tmp_path):
    """The guide's production check per model, in a fresh process as the bot runs it: the memory the loaded model
    (plus its first prediction) adds, under 100 MB, and the mean of 100 ``model.predict(X[:1])`` calls, under 100 ms."""
    import json
    import subprocess
    import sys

    from ml.training_pipeline.models import create_model
    from ml.training_pipeline.models.kinds import get_kind
    from ml.training_pipeline.models.registry import get_spec

    rows = []
    window = benchmark_data.X_test[:1]
    np.save(tmp_path / "window.npy", window)
    for name in window_models():
        spec = get_spec(name)
        if spec.kind == "estimator" or set(benchmark_data.other_inputs["test"]) & {
                s.name for s in get_kind(spec.kind).declared_inputs(create_model(name, (60, 15), variant="tiny"))}:
            continue  # LightGBM has no Keras predict; models with calendar inputs are timed in the comparison
        path = tmp_path / f"{name}.keras"
        model = create_model(name, input_shape=window.shape[1:])
        model.save(path)
        measured = json.loads(subprocess.run([sys.executable, "-c", _LOAD_AND_PREDICT, str(path),
                                              str(tmp_path / "window.npy")], capture_output=True, text=True,
                                             check=True).stdout.strip().splitlines()[-1])
        rows.append((name, model.count_params(), path.stat().st_size / 2**20, measured["loaded_mb"],
                     measured["mean_ms"], measured["p50_ms"]))
    print(f"\n=== Inference speed: one window, model.predict, fresh process ===\n{'model':<24}{'params':>10}"
          f"{'file MB':>9}{'loaded MB':>11}{'mean ms':>9}{'p50 ms':>8}")
    for name, params, file_mb, loaded_mb, ms, p50 in rows:
        print(f"{name:<24}{params:>10,}{file_mb:>9.2f}{loaded_mb:>11.1f}{ms:>9.2f}{p50:>8.2f}")
    for name, _, file_mb, loaded_mb, ms, _ in rows:
        assert ms < 100, f"{name}: {ms:.1f} ms per window"
        assert file_mb < 100 and loaded_mb < 100, f"{name}: {file_mb:.1f} MB file, {loaded_mb:.1f} MB loaded"


def test_my_custom_benchmark(benchmark_data, benchmark_config):
    """The guide's template for a custom benchmark: Attention-LSTM deep against an acceptance criterion."""
    X_train, y_train, X_val, y_val = benchmark_data
    result = benchmark_model("attention_lstm", "deep", X_train, y_train, X_val, y_val, benchmark_config)
    logger.info(f"Custom test RMSE: {result.rmse:.4f}")
    _check(result, benchmark_config)
    # RMSE is in price units here (BTC dollars); the criterion is relative to persistence on the same bars
    assert result.rmse < 1.05 * benchmark_data.baselines()["persistence"]["rmse"]
