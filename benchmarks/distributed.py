"""Throughput of multi-worker training: one process against N local workers (``atb cluster-local``).

Trains each model twice on the same data, global batch and seed: once in one process (``--distribute none``),
once as N workers on loopback ports (``--distribute multi-worker``), runs interleaved per model. Reports the
training windows per second over the fitted epochs (``timings.fit_s`` of the stored version), the wall time of
the whole command, and the final validation loss and test RMSE of both, so speed and agreement are read side
by side. On one machine the workers share its cores, so this measures the strategy's overhead, not a speed-up;
docs/distributed.md says what to expect across hosts.

Usage:
    python benchmarks/distributed.py [--workers 2] [--models lstm tcn] [--days 365] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(command: list[str]) -> float:
    """Runs a command to completion; returns its wall seconds (raises with its output on failure)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def stored(models_dir: Path) -> dict:
    [meta] = [json.loads(p.read_text()) for p in models_dir.glob("*/*/2*/metadata.json")]
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["lstm", "tcn"])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    atb = [sys.executable, "-m", "ml.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:
            train = ["train", "model", "BTCUSDT", "--model-type", model, "--days", str(args.days), "--epochs",
                     str(args.epochs), "--patience", str(args.epochs + 1), "--batch-size", str(args.batch_size),
                     "--quiet"]
            for label, processes, command in (
                    ("1 process", 1, [*atb, *train, "--distribute", "none"]),
                    (f"{args.workers} workers", args.workers,
                     [*atb, "cluster-local", str(args.workers), "--", "atb", *train, "--distribute", "multi-worker"])):
                models_dir = Path(scratch) / f"{model}-{processes}"
                wall = run([*command, "--models-dir", str(models_dir)])
                meta = stored(models_dir)
                epochs = len(meta["history"]["loss"])
                windows = meta["row_counts"]["train_windows"] * epochs
                rows.append({"model": model, "run": label, "replicas": meta["distribution"]["replicas"],
                             "epochs": epochs, "fit_s": meta["timings"]["fit_s"], "wall_s": wall,
                             "windows_per_s": windows / meta["timings"]["fit_s"],
                             "val_loss": meta["history"]["val_loss"][-1], "rmse": meta["metrics"]["model"]["rmse"]})
    print(f"BTCUSDT 1h, last {args.days} days, {args.epochs} epochs, global batch {args.batch_size}, seed 42; "
          f"{os.cpu_count()} CPU cores")
    print("| model | run | replicas | fit s | command wall s | train windows/s | vs 1 process | final val_loss "
          "| test RMSE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["replicas"] == 1)
        print(f"| {row['model']} | {row['run']} | {row['replicas']} | {row['fit_s']:.1f} | {row['wall_s']:.1f} | "
              f"{row['windows_per_s']:,.0f} | {row['windows_per_s'] / base['windows_per_s']:.2f}x | "
              f"{row['val_loss']:.5f} | {row['rmse']:.2f} |")


if __name__ == "__main__":
    main()
