"""Log-anomaly models on the real BGL sample, next to the majority class and the count-vector LightGBM.

Trains each model through the library's ``train`` (the same path as ``atb train anomaly``) on the
bundled 2,000-line BGL sample, scores it on the chronological test windows at the threshold chosen
on validation, and prints one table per windowing; then prints the label diagnostics of the same
windows and of next-hour BTCUSDT direction.

Usage:
    python benchmarks/log_anomaly.py [--models multimodal_transformer transformer lightgbm] [--epochs 60]

Runs in a temporary model store (nothing is written to src/ml/models).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from ml.data import bundled_log_path
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.diagnostics import diagnose_log, diagnose_price
from ml.training_pipeline.pipeline import train
from ml.training_pipeline.problems import LogAnomalyProblem
from ml.training_pipeline.problems.anomaly.windows import Windowing

COLUMNS = ("accuracy", "precision", "recall", "f1", "false_positive_rate", "roc_auc", "pr_auc")
# the transformer reads the events' numbers and flags as a plain window, with the padding mask
MODEL_KWARGS = {"transformer": {"padding_mask": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["multimodal_transformer", "transformer", "lightgbm"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    windowings = [Windowing("time", "5min"), Windowing("time", "5min", step="1min")]
    with tempfile.TemporaryDirectory() as store:
        for windowing in windowings:
            rows, counts = [], None
            for model_type in args.models:
                problem = LogAnomalyProblem(bundled_log_path("bgl"), "bgl", windowing)
                config = TrainingConfig(symbol="BGL", model_type=model_type, epochs=args.epochs,
                                        batch_size=args.batch_size, seed=args.seed, models_dir=store,
                                        model_kwargs=MODEL_KWARGS.get(model_type, {}))
                started = time.perf_counter()
                result = train(config, verbose=0, problem=problem)
                seconds = time.perf_counter() - started
                counts = result.row_counts
                report = result.report
                if not rows:
                    rows.append(("majority (train)", report["majority"], "-", "-", "-"))
                    rows += [(name.replace("_", " "), report[name], f"{threshold:.3g}", "-", "-")
                             for name, threshold in report["baseline_thresholds"].items()]
                epochs = len(result.history.get("loss", [])) or "-"
                rows.append((model_type, report["model"], f"{report['threshold']:.3g}", epochs, f"{seconds:.0f}"))
            print(f"\nBGL 2k, {windowing.describe()}: train/validation/test windows {counts['train_windows']}/"
                  f"{counts['validation_windows']}/{counts['test_windows']}, anomalous {counts['anomalous_train']}/"
                  f"{counts['anomalous_validation']}/{counts['anomalous_test']} (test part, threshold from validation)")
            print(f"| {'model':<24}| " + " | ".join(f"{c[:9]:>9}" for c in COLUMNS) + " | threshold | epochs | train s |")
            print("|" + "---|" * (len(COLUMNS) + 4))
            for name, metrics, threshold, epochs, seconds in rows:
                print(f"| {name:<24}| " + " | ".join(f"{metrics[c]:>9.3f}" for c in COLUMNS)
                      + f" | {threshold:>9} | {epochs!s:>6} | {seconds:>7} |")
    print()
    for report in (diagnose_log(bundled_log_path("bgl"), "bgl"), diagnose_price("BTCUSDT", "direction")):
        print(report.text(), end="\n\n")


if __name__ == "__main__":
    main()
