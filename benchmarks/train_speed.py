"""Training throughput, CLI start-up and the full `atb train` run, in one process run.

Prints:
1. this machine's fp32 matmul peak (TensorFlow, 2048x2048, same run);
2. per default-variant model at input (60, 15): parameters, training FLOPs per window
   (analytical forward count x 3 for forward + backward), windows/s measured with the
   pipeline's own settings (batch size, op determinism, tf.data), and the share of peak;
3. `atb --help` wall time and whether it imported TensorFlow;
4. with --full-run: `atb train model BTCUSDT --model-type tcn --days 365 --epochs 80`
   wall time and peak memory (max RSS of the child process).

Usage:
    python benchmarks/train_speed.py [--models tcn attention_lstm] [--batch-size 128] [--full-run]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

TYPICAL_WINDOWS_PER_S = {"tcn": 210.0, "attention_lstm": 106.0}  # the reference figures


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> float:
    import tensorflow as tf

    a, b = tf.random.normal((n, n), seed=1), tf.random.normal((n, n), seed=2)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            out = matmul(a, b)
        out.numpy()
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n**3 / best


def forward_flops(model) -> float:
    """Multiply-adds x 2 of the layers that dominate: Conv1D, Dense, LSTM, attention scoring."""
    total = 0.0
    for layer in model.layers:
        kind = type(layer).__name__
        try:
            in_shape, out_shape = layer.input.shape, layer.output.shape
        except (AttributeError, ValueError):
            continue
        if kind == "Conv1D":
            total += 2 * out_shape[1] * layer.kernel_size[0] * in_shape[-1] * layer.filters
        elif kind == "Dense":
            steps = in_shape[1] if len(in_shape) == 3 else 1
            total += 2 * steps * in_shape[-1] * layer.units
        elif kind == "LSTM":
            total += 2 * in_shape[1] * 4 * layer.units * (in_shape[-1] + layer.units)
        elif kind == "TemporalAttention":
            total += 2 * in_shape[1] * (in_shape[-1] * layer.units + layer.units) + 2 * in_shape[1] * in_shape[-1]
    return total


def training_throughput(name: str, batch_size: int, windows: int = 6144, epochs: int = 4) -> tuple[float, int, float]:
    """(windows/s, parameters, training FLOPs per window) with the pipeline's fit settings.

    The rate is the best of ``epochs`` timed epochs: this machine is shared, and the best
    epoch is the one least disturbed by other load (the usual practice for throughput).
    """
    import keras
    import tensorflow as tf

    from ml.training_pipeline.datasets import to_tf_dataset
    from ml.training_pipeline.models import create_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((windows, 60, 15)).astype(np.float32)
    y = rng.standard_normal(windows).astype(np.float32)
    model = create_model(name, input_shape=(60, 15), variant="default")
    dataset = to_tf_dataset(x, y, batch_size, shuffle=True, seed=0)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)  # trace and warm up
    timer = EpochTimer()
    model.fit(dataset, epochs=epochs, verbose=0, shuffle=False, callbacks=[timer])
    del tf
    return windows / min(timer.seconds), model.count_params(), 3 * forward_flops(model)


def EpochTimer():
    """A Keras callback recording each epoch's wall time in ``.seconds``."""
    import keras

    class _EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return _EpochTimer()


def help_time(repeats: int = 5) -> tuple[float, bool]:
    code = ("import sys, io, contextlib\nfrom ml.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "print('tensorflow' in sys.modules)")
    times, heavy = [], False
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        times.append(time.perf_counter() - start)
        heavy |= out.strip() == "True"
    return statistics.median(times), heavy


def full_run() -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of the README's main training command."""
    with tempfile.TemporaryDirectory() as models_dir:
        command = [sys.executable, "-m", "ml.cli", "train", "model", "BTCUSDT", "--model-type", "tcn",
                   "--days", "365", "--epochs", "80", "--models-dir", models_dir]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_mb, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["tcn", "tcn_attention", "attention_lstm", "cnn_lstm", "lstm"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: the pipeline's TrainingConfig default")
    parser.add_argument("--full-run", action="store_true")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from ml.training_pipeline.config import TrainingConfig

    batch_size = args.batch_size or TrainingConfig.__dataclass_fields__["batch_size"].default
    tf.random.set_seed(0)
    tf.config.experimental.enable_op_determinism()  # as the pipeline trains
    peak = matmul_peak_flops()
    rows = [(name, *training_throughput(name, batch_size)) for name in args.models]
    help_s, help_heavy = help_time()

    print(f"\nfp32 matmul peak (TensorFlow, 2048^2, this run): {peak / 1e9:.1f} GFLOP/s on {os.cpu_count()} cores")
    print(f"training at input (60, 15), default variants, batch {batch_size}, op determinism on, best of 4 epochs")
    header = f"{'model':<16}{'params':>10}{'MFLOP/window':>14}{'windows/s':>11}{'GFLOP/s':>9}{'% of peak':>11}{'vs typical':>12}"
    print(header)
    print("-" * len(header))
    for name, rate, params, flops in rows:
        typical = TYPICAL_WINDOWS_PER_S.get("tcn" if name.startswith("tcn") else "attention_lstm")
        print(f"{name:<16}{params:>10,}{flops / 1e6:>14.1f}{rate:>11.0f}{rate * flops / 1e9:>9.1f}"
              f"{100 * rate * flops / peak:>10.1f}%{rate / typical:>11.1f}x")
    print(f"\natb --help: {help_s * 1000:.0f} ms median of 5 (process start included); imports TensorFlow: {help_heavy}")
    if args.full_run:
        wall, peak_mb, output = full_run()
        print("\n" + output.strip()[output.find("model      "):])
        print(f"\natb train model BTCUSDT --model-type tcn --days 365 --epochs 80: {wall:.0f} s wall, "
              f"peak RSS {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
