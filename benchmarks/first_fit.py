"""The first fit of a fresh model, per family: one trace of the training step (state built first) against two.

Keras 3 on TensorFlow builds the optimizer's slots and the compiled metrics inside the first traced training
step when no distribution strategy is set; variables made during a trace make TensorFlow trace the step again.
``fitting.tracing.build_training_state`` builds them before the fit. This script fits fresh tiny-preset models
(a test suite's and a smoke run's size, where the trace is most of the time) and default-preset ones on random
windows for one epoch, with and without that step, interleaved in one process, and prints the wall time of each
first fit, the ratio and the number of traces of the training step.

Usage:
    python benchmarks/first_fit.py [--models tcn lstm transformer tft] [--variants tiny default] [--repeats 3]
        [--windows 1803]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def first_fit(name: str, variant: str, build_first: bool, windows: int) -> tuple[float, int]:
    """Seconds of one epoch's fit of a fresh model (the pipeline's adapter, at batch 32) and its step's traces."""
    import keras

    from ml.training_pipeline.models import create_model, declared_inputs
    from ml.training_pipeline.models.kinds import keras_kind
    from ml.training_pipeline.models.kinds.base import FitData, FitSettings

    rng = np.random.default_rng(0)
    inputs = {spec.name: rng.standard_normal((windows, *spec.shape)).astype("float32")
              for spec in declared_inputs(name, (60, 15), variant)}
    y = rng.standard_normal((windows, 1)).astype("float32")
    model = create_model(name, (60, 15), variant=variant)
    traces = []
    step = keras.Model.train_step
    keras.Model.train_step = lambda self, data: traces.append(1) or step(self, data)
    real = keras_kind.build_training_state
    keras_kind.build_training_state = real if build_first else (lambda *args: None)
    try:
        start = time.perf_counter()
        split = len(y) * 4 // 5
        keras_kind.KerasKind().fit(model, FitData({k: v[:split] for k, v in inputs.items()}, y[:split]),
                                   FitData({k: v[split:] for k, v in inputs.items()}, y[split:]),
                                   FitSettings(epochs=1, batch_size=32, patience=3, seed=0))
        return time.perf_counter() - start, len(traces)
    finally:
        keras.Model.train_step, keras_kind.build_training_state = step, real


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tcn", "lstm", "transformer", "tft"])
    parser.add_argument("--variants", nargs="+", default=["tiny", "default"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--windows", type=int, default=1803, help="training + validation windows (default: the "
                                                                    "README's --days 120 split)")
    args = parser.parse_args(argv)
    first_fit("tcn", "tiny", True, args.windows)  # TensorFlow's own start-up, paid once, outside the table
    print("| model | variant | first fit, state built first (s) | first fit, Keras' lazy build (s) | ratio | "
          "traces (built first / lazy) |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        for variant in args.variants:
            times: dict[bool, list[float]] = {True: [], False: []}
            traces: dict[bool, int] = {}
            for _ in range(args.repeats):
                for build_first in (True, False):
                    seconds, traces[build_first] = first_fit(name, variant, build_first, args.windows)
                    times[build_first].append(seconds)
            built, lazy = statistics.median(times[True]), statistics.median(times[False])
            print(f"| {name} | {variant} | {built:.2f} | {lazy:.2f} | {lazy / built:.2f}x | "
                  f"{traces[True]} / {traces[False]} |", flush=True)


if __name__ == "__main__":
    main()
