"""Training windows/s with windows cut per batch from their rows against windows held whole, every family.

The pipeline keeps a price problem's windows as read-only views of the scaled rows and cuts each batch's windows
inside the input pipeline (``common.windows.to_tf_dataset``: shuffled indices, one gather per batch); before, every
window was copied into one array that ``from_tensor_slices`` fed. This script trains every registered window model
(default variant, input (60, 15), the bundled BTCUSDT features scaled, next-bar return target) on the same windows
both ways, interleaved, at each batch size, and prints windows/s of one epoch (the best of ``--repeats``, after a
first epoch that traces) and their ratio; the cut windows both ways the pipeline feeds them: as for small data
(TensorFlow's gather from a constant of the rows, tf.data's shuffle buffer) and as for big data (NumPy's gather
inside the input pipeline above ``common.windows.GATHER_IN_NUMPY_BYTES``, one permutation tensor per epoch above
``SHUFFLE_BY_PERMUTATION_WINDOWS``). Inputs a model reads besides the window (the TFT's calendar) are the
same random arrays every way.

Usage:
    python benchmarks/window_throughput.py [--models tcn lstm] [--batch-sizes 32 128] [--windows 4096] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def scaled_rows(rows: int) -> np.ndarray:
    """The bundled series' features, scaled on themselves, as float32 rows."""
    from ml.training_pipeline.problems.price.features import build_features
    from ml.training_pipeline.problems.price.ohlcv import load_ohlcv

    values = build_features(load_ohlcv("BTCUSDT").frame).to_numpy()[-rows:]
    return ((values - values.mean(0)) / values.std(0)).astype(np.float32)


def window_models() -> list[str]:
    from ml.training_pipeline.models import declared_inputs, list_models

    return [n for n in list_models() if [s.name for s in declared_inputs(n, (60, 15))][:1] == ["inputs"]
            and n != "lightgbm"]


def epoch_seconds(model, inputs: dict, y: np.ndarray, batch_size: int, large: bool = False) -> float:
    """One epoch's seconds; ``large``: the input pipeline of big data (NumPy's gather, one permutation per epoch),
    which the sizes decide in the pipeline and which is forced here."""
    from ml.training_pipeline.common import windows
    from ml.training_pipeline.common.tensors import model_argument

    thresholds = windows.GATHER_IN_NUMPY_BYTES, windows.SHUFFLE_BY_PERMUTATION_WINDOWS
    if large:
        windows.GATHER_IN_NUMPY_BYTES, windows.SHUFFLE_BY_PERMUTATION_WINDOWS = 0, 0
    try:
        dataset = windows.to_tf_dataset(model_argument(model, inputs), y, batch_size, shuffle=True, seed=0)
    finally:
        windows.GATHER_IN_NUMPY_BYTES, windows.SHUFFLE_BY_PERMUTATION_WINDOWS = thresholds
    started = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[32, 128])
    parser.add_argument("--windows", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    from ml.training_pipeline.common.tensors import generate_inputs
    from ml.training_pipeline.common.windows import sliding_windows
    from ml.training_pipeline.models import create_model, declared_inputs

    rows = scaled_rows(args.windows + 59)
    view = sliding_windows(rows, 60, copy=False)[:args.windows]
    held = np.ascontiguousarray(view)
    y = np.r_[rows[60:, 0], 0.0][:args.windows].astype(np.float32)
    print("| model | batch | windows/s held whole | cut per batch | ratio | cut per batch as for big data (NumPy's gather, "
          "one permutation per epoch) | ratio |\n|---|---|---|---|---|---|---|", flush=True)
    for name in args.models or window_models():
        others = generate_inputs(declared_inputs(name, (60, 15)), args.windows)
        for batch_size in args.batch_sizes:
            model = create_model(name, input_shape=(60, 15), variant="default")
            ways = {"held": ({**others, "inputs": held}, False), "cut": ({**others, "inputs": view}, False),
                    "large": ({**others, "inputs": view}, True)}
            epoch_seconds(model, ways["held"][0], y, batch_size)  # traces the step
            best = {way: float("inf") for way in ways}
            for _ in range(args.repeats):  # interleaved: every way sees the machine's same minutes
                for way, (inputs, large) in ways.items():
                    best[way] = min(best[way], epoch_seconds(model, inputs, y, batch_size, large))
            rate = {way: args.windows / seconds for way, seconds in best.items()}
            print(f"| {name} | {batch_size} | {rate['held']:,.0f} | {rate['cut']:,.0f} | "
                  f"{rate['cut'] / rate['held']:.2f}x | {rate['large']:,.0f} | {rate['large'] / rate['held']:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
