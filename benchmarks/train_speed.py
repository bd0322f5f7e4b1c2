"""Training throughput per family against this machine's measured ceiling, before and after the speed
changes, CLI start-up and the full `atb train` run, in one process run.

Prints:
1. the CPU, its SIMD width, and the ceiling: NumPy sgemm (best of sizes and repeats, with the BLAS
   kernel that ran), next to the theoretical FMA peak and TensorFlow's own 2048^2 matmul;
2. per default-variant model at input (60, 15), at batch 32 and 128: parameters, training FLOPs
   per window (analytical forward count x 3), windows/s, GFLOP/s, share of the sgemm ceiling and
   the CPU idle share (1 - process CPU time / (wall x cores)), "before" (one step per execution: the
   library until this change), "after" (16 steps per execution: the factory now) and, for recurrent
   families, "unrolled" (after + unrolled LSTMs, measured and not adopted), interleaved;
3. `atb --help` wall time and whether it imported TensorFlow;
4. with --full-run: `atb train model BTCUSDT --model-type tcn` (the README's command) wall time,
   epochs, best validation loss and peak memory.

Usage:
    python benchmarks/train_speed.py [--models tcn attention_lstm] [--batch-sizes 32 128] [--full-run]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

RECURRENT = ("lstm", "cnn_lstm", "attention_lstm", "tft")
FAMILIES = ["lstm", "cnn_lstm", "attention_lstm", "tcn", "tcn_attention", "transformer", "tft", "mamba", "xlstm"]


def tf_matmul_flops(n: int = 2048, repeats: int = 10) -> float:
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


def _variant(model, setting: str):
    """The model as trained under ``setting``: ``after`` (the factory's settings now), ``before`` (one step per
    execution, the library until this change) or ``unrolled`` (LSTMs unrolled: measured, not adopted)."""
    import keras

    if setting == "after":
        return model
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "LSTM":
            layer["config"]["unroll"] = setting == "unrolled"
    variant = keras.Model.from_config(config)
    variant.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0), loss=model.loss,
                    steps_per_execution=1 if setting == "before" else model.steps_per_execution)
    return variant


def training_throughput(name: str, batch_size: int, setting: str, windows: int = 4096, epochs: int = 3
                        ) -> tuple[float, float, int, float | None]:
    """(windows/s, CPU idle share, parameters, training FLOPs per window or None) for one setting.

    The rate is the best of ``epochs`` timed epochs: this machine is shared, and the best epoch is the
    one least disturbed by other load (the usual practice for throughput).
    """
    import keras

    from ml.training_pipeline.datasets import to_tf_dataset
    from ml.training_pipeline.hardware import forward_flops
    from ml.training_pipeline.models import create_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = create_model(name, input_shape=(60, 15), variant="default")
    x = {t.name: (rng.standard_normal((windows, *t.shape[1:])).astype(np.float32) if "float" in str(t.dtype)
                  else np.zeros((windows, *t.shape[1:]), np.int32)) for t in model.inputs}
    x = next(iter(x.values())) if len(x) == 1 else x
    y = rng.standard_normal(windows).astype(np.float32)
    model = _variant(model, setting)
    dataset = to_tf_dataset(x, y, batch_size, shuffle=True, seed=0)
    model.fit(dataset, epochs=1, verbose=0)  # trace and warm up
    best = None
    for _ in range(epochs):
        cpu, wall = time.process_time(), time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best = (wall, cpu) if best is None or wall < best[0] else best
    cores = len(os.sched_getaffinity(0))
    forward = forward_flops(model)  # None for a family whose blocks the estimate does not count
    return windows / best[0], 1 - best[1] / (best[0] * cores), model.count_params(), 3 * forward if forward else None


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


def full_run() -> dict:
    """Wall seconds, epochs, best validation loss and peak RSS (MB) of the README's main training command."""
    with tempfile.TemporaryDirectory() as models_dir:
        command = [sys.executable, "-m", "ml.cli", "train", "model", "BTCUSDT", "--model-type", "tcn",
                   "--models-dir", models_dir]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        meta = json.loads(next(Path(models_dir).rglob("metadata.json")).read_text())
    history = meta["history"]
    return {"wall_s": wall, "epochs": len(history["loss"]), "best_val_loss": min(history["val_loss"]),
            "skill": meta["metrics"]["skill"], "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=FAMILIES)
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[32, 128])
    parser.add_argument("--full-run", action="store_true")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from ml.training_pipeline.hardware import cpu_info, describe_ceiling, measured_peak

    tf.random.set_seed(0)
    tf.config.experimental.enable_op_determinism()  # as the pipeline trains
    info, peak = cpu_info(), measured_peak()
    tf_peak = tf_matmul_flops()
    rows = []
    for name in args.models:
        for batch in args.batch_sizes:
            recurrent = name in RECURRENT
            for setting in ("before", "after", *(("unrolled",) if recurrent else ())):  # interleaved: same load
                rows.append((name, batch, setting, *training_throughput(name, batch, setting)))
    help_s, help_heavy = help_time()

    print(f"\n{describe_ceiling(peak, info)}")
    print(f"TensorFlow's own 2048^2 matmul this run: {tf_peak / 1e9:.1f} GFLOP/s ({tf_peak / peak:.0%} of the ceiling)")
    print("training at input (60, 15), default variants, op determinism on, best of 3 epochs of 4096 windows;")
    print("before = 1 step per execution (the library until this change); after = 16 steps per execution (now); "
          "unrolled = after + LSTMs unrolled (measured, not adopted: slower tracing, export and ONNX inference)")
    header = (f"| {'model':<15}| batch | setting  |   params | MFLOP/window | windows/s | GFLOP/s | % of ceiling | "
              f"CPU idle | vs before |")
    print(header)
    print("|---|---|---|---|---|---|---|---|---|---|")
    for index, (name, batch, setting, rate, idle, params, flops) in enumerate(rows):
        before = next(r for r in reversed(rows[:index + 1]) if r[0] == name and r[1] == batch and r[2] == "before")
        ratio = f"{rate / before[3]:.2f}x" if setting != "before" else ""
        gflops = f"{rate * flops / 1e9:7.1f}" if flops else "      -"
        share = f"{100 * rate * flops / peak:11.1f}%" if flops else "           -"
        mflop = f"{flops / 1e6:12.1f}" if flops else "           -"
        print(f"| {name:<15}| {batch:>5} | {setting:<8} | {params:>8,} | {mflop} | {rate:>9.0f} | {gflops} | {share} | "
              f"{idle:>7.1%} | {ratio:>12} |")
    print(f"\natb --help: {help_s * 1000:.0f} ms median of 5 (process start included); imports TensorFlow: {help_heavy}")
    if args.full_run:
        run = full_run()
        print(f"\natb train model BTCUSDT --model-type tcn: {run['wall_s']:.0f} s wall, {run['epochs']} epochs, best "
              f"val_loss {run['best_val_loss']:.4f}, skill vs persistence {run['skill']:+.4f}, peak RSS "
              f"{run['peak_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
