"""Opt-in (`pytest tests/benchmark -m benchmark`): every architecture on the same data.

Each registered model is trained by the real pipeline on the same BTCUSDT window, split
and seed, and its test metrics are printed next to the naive baselines of that window.
Run with `-s` to see the table.
"""

from __future__ import annotations

import math

import pytest

from ml.training_pipeline.comparison import window_models

pytestmark = pytest.mark.benchmark

DAYS, EPOCHS = 365, 30
RESULTS: dict[str, dict] = {}


# models that read the OHLCV window and what the price problem offers beside it (the calendar `known`);
# other multi-input models need other data
WINDOW_MODELS = window_models()


@pytest.mark.parametrize("model_type", WINDOW_MODELS)
def test_architecture_on_shared_data(model_type, tmp_path_factory):
    from ml.training_pipeline.config import TrainingConfig
    from ml.training_pipeline.pipeline import train

    config = TrainingConfig(symbol="BTCUSDT", model_type=model_type, days=DAYS, epochs=EPOCHS, patience=8,
                            models_dir=str(tmp_path_factory.mktemp(model_type)))
    result = train(config, verbose=0)
    report = result.report
    RESULTS[model_type] = {"report": report, "parity": result.onnx["max_abs_diff"], "fit_s": result.timings["fit_s"],
                           "epochs": len(next(iter(result.history.values())))}
    assert math.isfinite(report["model"]["rmse"]) and result.onnx["max_abs_diff"] < 1e-4
    # every model is judged on the same bars as the same persistence baseline
    first = next(iter(RESULTS.values()))["report"]
    assert report["n"] == first["n"] and report["persistence"] == first["persistence"]


def test_print_comparison_table():
    if not RESULTS:
        pytest.skip("no architecture ran")
    any_report = next(iter(RESULTS.values()))["report"]
    persistence, moving = any_report["persistence"], any_report["moving_average"]
    print(f"\nBTCUSDT 1h, last {DAYS} days, next-bar log return, test window {any_report['n']} bars, seed 42")
    print(f"{'model':<16}{'RMSE':>9}{'MAE':>9}{'MAPE %':>8}{'dir.acc':>9}{'skill':>9}{'epochs':>8}{'fit s':>7}{'parity':>9}")
    for name, r in RESULTS.items():
        m = r["report"]["model"]
        print(f"{name:<16}{m['rmse']:>9.2f}{m['mae']:>9.2f}{m['mape']:>8.3f}{m['directional_accuracy']:>9.3f}"
              f"{r['report']['skill']:>+9.4f}{r['epochs']:>8}{r['fit_s']:>7.0f}{r['parity']:>9.1e}")
    for name, m in (("persistence", persistence), ("moving_average", moving)):
        print(f"{name:<16}{m['rmse']:>9.2f}{m['mae']:>9.2f}{m['mape']:>8.3f}{m['directional_accuracy']:>9.3f}"
              f"{1 - m['rmse'] / persistence['rmse']:>+9.4f}")
