"""Monte-Carlo sampling: draws stacked into one forward pass against one pass per draw.

``predict_with_uncertainty`` stacks several draws of the same rows into one training-mode pass for a model whose
rows draw their own sample (``Capabilities.samples_per_row``: MC dropout), up to
``uncertainty.SAMPLING_ROWS`` rows a pass. This script times 100 draws of the default ``mcdropout_transformer``
at (60, 15), for one window (``atb predict --uncertainty``) and for a test part's worth of rows, both ways,
interleaved in one process (best of the repeats), and prints the table.

Usage:
    python benchmarks/mc_sampling.py [--rows 1 32 364] [--samples 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=int, default=[1, 32, 364])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from ml.training_pipeline import uncertainty
    from ml.training_pipeline.models import create_model

    model = create_model("mcdropout_transformer", (60, 15))
    rng = np.random.default_rng(0)
    stacked_rule = uncertainty.draws_per_pass
    print(f"| rows | draws per pass | {args.samples} draws stacked (s) | one pass per draw (s) | speed-up |")
    print("|---|---|---|---|---|")
    for rows in args.rows:
        x = rng.standard_normal((rows, 60, 15)).astype("float32")
        uncertainty.predict_with_uncertainty(model, x, n_samples=4)  # the traces, outside the timing
        times: dict[bool, list[float]] = {True: [], False: []}
        try:
            for _ in range(args.repeats):
                for stacked in (True, False):
                    uncertainty.draws_per_pass = stacked_rule if stacked else (lambda *_: 1)
                    start = time.perf_counter()
                    uncertainty.predict_with_uncertainty(model, x, n_samples=args.samples)
                    times[stacked].append(time.perf_counter() - start)
        finally:
            uncertainty.draws_per_pass = stacked_rule
        best = {k: min(v) for k, v in times.items()}
        print(f"| {rows} | {stacked_rule(model, rows, args.samples)} | {best[True]:.2f} | {best[False]:.2f} | "
              f"{best[False] / best[True]:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
