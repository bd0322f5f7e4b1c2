"""Peak memory and wall time of `atb train` as the rows grow: synthetic one-minute klines, one process per run.

For each row count (``--rows``) the script writes one-minute Binance-layout klines (a geometric random walk with
volume, trades and taker columns of realistic shape; Parquet) to a temporary folder and runs, in a fresh process
per model, ``atb train model SYN --timeframe 1m --model-type M --data FILE --epochs 1 --steps-per-epoch N``
(every row kept, one bounded epoch: the memory of the data path, not of a long fit). It prints the peak resident
memory of that process (``wait4``'s ``ru_maxrss``), the wall time and its phases as the run's own lines give them
(preparing the data, the epoch with its validation pass, evaluating on the validation and test windows; the rest is
start-up, export and storing; "-" where the run printed no line for it: a phase under the progress line's first 5 s,
or none, as LightGBM has no epochs), and the bytes per row of the fit between the smallest and each larger row count.

Usage:
    python benchmarks/scale.py [--rows 50000 200000 1000000] [--models tcn] [--steps-per-epoch 20]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def minute_klines(rows: int, seed: int = 0):
    """One-minute klines in Binance's column layout, from a random walk (0.05% per minute)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 20_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, rows)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 3e-4, rows)) * close
    volume = rng.gamma(2.0, 5.0, rows)
    start = 1_577_836_800_000  # 2020-01-01 UTC, in ms
    times = start + np.arange(rows, dtype=np.int64) * 60_000
    return pd.DataFrame({"time": times, "open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close, "volume": volume,
                         "close_time": times + 59_999, "quote_asset_volume": volume * close,
                         "trade_count": rng.poisson(300, rows), "taker_buy_asset_volume": volume * 0.5,
                         "taker_buy_quote_asset_volume": volume * close * 0.5, "ignore": 0})


PHASES = {"prepare": r"preparing the data.*done in ([\d.]+) (s|min)", "epoch": r"\| ([\d.]+) (s)/epoch",
          "evaluate": r"evaluating on the validation and test parts, done in ([\d.]+) (s|min)"}


def run(argv: list[str]) -> tuple[float, float, int, dict[str, float]]:
    """(wall seconds, peak resident GB, exit code, seconds per phase found in its output) of one child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        out.seek(0)
        text = out.read()
    phases = {}
    for name, pattern in PHASES.items():
        found = re.findall(pattern, text)
        if found:
            value, unit = found[-1]
            phases[name] = float(value) * (60 if unit == "min" else 1)
    return time.perf_counter() - start, usage.ru_maxrss * 1024 / 1e9, os.waitstatus_to_exitcode(status), phases


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=int, default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--models", nargs="+", default=["tcn"])
    parser.add_argument("--steps-per-epoch", type=int, default=20)
    args = parser.parse_args(argv)
    print("| model | rows | peak memory (GB) | bytes per extra row | wall (s) | prepare / epoch / evaluate (s) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            first = None
            for rows in sorted(args.rows):
                path = Path(folder) / f"syn_{rows}.parquet"
                if not path.exists():
                    minute_klines(rows).to_parquet(path)
                wall, peak, code, phases = run([sys.executable, "-m", "ml.cli", "train", "model", "SYN", "--timeframe", "1m",
                                        "--model-type", model, "--data", str(path), "--epochs", "1",
                                        *(["--steps-per-epoch", str(args.steps_per_epoch)] if model != "lightgbm"
                                          else []), "--models-dir", str(Path(folder) / "models")])
                slope = "" if first is None else f"{(peak - first[1]) * 1e9 / (rows - first[0]):,.0f}"
                first = first or (rows, peak)
                split = " / ".join(f"{phases[p]:.0f}" if p in phases else "-" for p in PHASES)
                print(f"| {model} | {rows:,} | {peak:.2f} | {slope} | {wall:.0f}{'' if code == 0 else f' (exit {code})'} "
                      f"| {split} |", flush=True)


if __name__ == "__main__":
    main()
