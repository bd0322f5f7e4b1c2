"""LightGBM's fit on the bundled windows: seconds and peak memory, this checkout against another one.

Each measurement is its own process (peak memory is a process's): the bundled BTCUSDT hours through the
pipeline's own preparation (60 x 15 windows, next-hour return), then ``create_model("lightgbm")`` fitted through
the estimator kind's path with a fixed number of boosting rounds (no early stopping), then a prediction on the
test windows. ``--against PATH`` runs the same in the ``src`` folder of another checkout (e.g. a ``git worktree``
of an older commit), interleaved with this one, so both are measured on the same machine in the same minutes.

Usage:
    python benchmarks/lightgbm_fit.py [--rounds 100] [--repeats 3] [--against /tmp/before]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys, time
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.models import create_model
from ml.training_pipeline.models.kinds import get_kind
from ml.training_pipeline.models.kinds.base import FitSettings
from ml.training_pipeline.problems import get_problem

rounds = int(sys.argv[1])
config = TrainingConfig(symbol="BTCUSDT", model_type="lightgbm", residual=False, calendar=False)
data = get_problem("return", config.horizon).prepare(config)
model = create_model("lightgbm", {s.name: s.shape for s in data.inputs[:1]}, task="regression")
kind = get_kind("estimator")
train = type(data.train)({k: v for k, v in data.train.inputs.items() if k == "inputs"}, data.train.y)
validation = type(data.validation)({k: v for k, v in data.validation.inputs.items() if k == "inputs"}, data.validation.y)
started = time.perf_counter()
kind.fit(model, train, validation, FitSettings(epochs=rounds, patience=rounds + 1))
fit_s = time.perf_counter() - started
started = time.perf_counter()
kind.predict(model, {"inputs": data.test.inputs["inputs"]})
print(json.dumps({"fit_s": fit_s, "predict_s": time.perf_counter() - started, "rounds": model.booster_.num_trees(),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def measure(source: str, rounds: int) -> dict:
    environment = {**os.environ, "PYTHONPATH": source}
    out = subprocess.run([sys.executable, "-c", CHILD, str(rounds)], capture_output=True, text=True, check=True,
                         env=environment).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", help="another checkout whose src/ is measured too")
    args = parser.parse_args(argv)
    sources = {"this checkout": str(Path(__file__).resolve().parents[1] / "src")}
    if args.against:
        sources[f"{args.against}"] = str(Path(args.against) / "src")
    runs: dict[str, list[dict]] = {name: [] for name in sources}
    for _ in range(args.repeats):
        for name, source in sources.items():
            runs[name].append(measure(source, args.rounds))
    print(f"| source | fit, {args.rounds} rounds (s) | predict test (s) | peak memory (GB) |")
    print("|---|---|---|---|")
    for name, results in runs.items():
        cells = [" / ".join(f"{r[key]:.2f}" for r in results) for key in ("fit_s", "predict_s", "peak_gb")]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
