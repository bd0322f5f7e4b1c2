"""Monte-Carlo sampling: draws stacked into one forward pass against one pass per draw.

``predict_with_uncertainty`` stacks several draws of the same rows into one training-mode pass for a model whose
rows draw their own sample (``Capabilities.samples_per_row``: MC dropout), up to
``uncertainty.SAMPLING_ROWS`` rows a pass. This script times 100 draws of the default ``mcdropout_transformer``
at (60, 15), for one window (``atb predict --uncertainty``) and for a test part's worth of rows, both ways,
interleaved in one process (best of the repeats), and prints the table, with the bound of stacking: the same rows
pushed through the model in inference mode (no dropout, no sampling), which no way of drawing can beat.

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
    print(f"| rows | draws per pass | {args.samples} draws stacked (s) | one pass per draw (s) | speed-up | the stacked "
          "rows in inference mode, no sampling (s) | the most stacking could give |")
    print("|---|---|---|---|---|---|---|")
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
        floor = inference_floor(model, x, args.samples, args.repeats)
        print(f"| {rows} | {stacked_rule(model, rows, args.samples)} | {best[True]:.2f} | {best[False]:.2f} | "
              f"{best[False] / best[True]:.1f}x | {floor:.2f} | {best[False] / floor:.1f}x |", flush=True)


def inference_floor(model, x: np.ndarray, samples: int, repeats: int) -> float:
    """Seconds of the stacked draws' arithmetic without the sampling: ``samples`` copies of ``x`` through the
    model in inference mode (no dropout), one traced call per pass of at most SAMPLING_ROWS rows."""
    import tensorflow as tf

    from ml.training_pipeline.uncertainty import SAMPLING_ROWS

    call = tf.function(lambda batch: model(batch, training=False))
    copies = max(1, min(samples, SAMPLING_ROWS // len(x)))
    batch = np.concatenate([x] * copies)
    passes = -(-samples // copies)
    np.asarray(call(batch))  # the trace
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(passes):
            np.asarray(call(batch))
        best = min(best, time.perf_counter() - start)
    return best


if __name__ == "__main__":
    main()
