"""Peak memory and wall time of `atb train` as the rows grow: synthetic one-minute klines, one process per run.

For each row count (``--rows``) the script writes one-minute Binance-layout klines (a geometric random walk with
volume, trades and taker columns of realistic shape; Parquet) to a temporary folder and runs, in a fresh process
per model, ``atb train model SYN --timeframe 1m --model-type M --data FILE --epochs 1 --steps-per-epoch N``
(every row kept, one bounded epoch: the memory of the data path, not of a long fit). It prints the peak resident
memory of that process (``wait4``'s ``ru_maxrss``), the wall time and its phases as the run's own lines give them
(preparing the data, the epoch with its validation pass, evaluating on the validation and test windows; the rest is
start-up, export and storing; "-" where the run printed no line for it: a phase under the progress line's first 5 s,
or none, as LightGBM has no epochs), and the bytes per row of the fit between the smallest and each larger row count.

``--symbols N`` trains one model on N such symbols (each its own random walk of ``rows`` rows: the pooled path of
``atb train model SYN SYN2 ... --data SYN2=FILE``); ``--against CHECKOUT`` runs every case with that checkout's
``src`` first on ``PYTHONPATH`` too, right after this one's, for a before/after table from one run.

Usage:
    python benchmarks/scale.py [--rows 50000 200000 1000000] [--models tcn] [--steps-per-epoch 20] [--symbols 2]
        [--against /tmp/before]
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


def run(argv: list[str], source: str | None = None) -> tuple[float, float, int, dict[str, float]]:
    """(wall seconds, peak resident GB, exit code, seconds per phase found in its output) of one child process,
    importing the library from ``source`` (a checkout's ``src``) when given."""
    start = time.perf_counter()
    env = dict(os.environ, **({"PYTHONPATH": source} if source else {}))
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
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
    parser.add_argument("--symbols", type=int, default=1, help="symbols in one model, each of --rows rows")
    parser.add_argument("--against", help="a checkout to run every case with too (its src on PYTHONPATH)")
    args = parser.parse_args(argv)
    sources = [("now", None)] + ([(f"{args.against}", str(Path(args.against) / "src"))] if args.against else [])
    print("| model | symbols x rows | source | peak memory (GB) | bytes per extra row | wall (s) | prepare / epoch / evaluate (s) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            first: dict[str, tuple[int, float]] = {}
            for rows in sorted(args.rows):
                names = ["SYN", *(f"SYN{i + 1}" for i in range(1, args.symbols))]
                data = []
                for number, name in enumerate(names):
                    path = Path(folder) / f"syn_{rows}_{number}.parquet"
                    if not path.exists():
                        minute_klines(rows, seed=number).to_parquet(path)
                    data += ["--data", str(path) if args.symbols == 1 else f"{name}={path}"]
                for label, source in sources:
                    wall, peak, code, phases = run(
                        [sys.executable, "-m", "ml.cli", "train", "model", *names, "--timeframe", "1m", "--model-type",
                         model, *data, "--epochs", "1",
                         *(["--steps-per-epoch", str(args.steps_per_epoch)] if model != "lightgbm" else []),
                         "--models-dir", str(Path(folder) / "models")], source)
                    total = rows * args.symbols
                    slope = "" if label not in first else f"{(peak - first[label][1]) * 1e9 / (total - first[label][0]):,.0f}"
                    first.setdefault(label, (total, peak))
                    split = " / ".join(f"{phases[p]:.0f}" if p in phases else "-" for p in PHASES)
                    print(f"| {model} | {args.symbols} x {rows:,} | {label} | {peak:.2f} | {slope} | {wall:.0f}"
                          f"{'' if code == 0 else f' (exit {code})'} | {split} |", flush=True)


if __name__ == "__main__":
    main()
