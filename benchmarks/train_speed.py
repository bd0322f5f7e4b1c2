"""Training throughput per family against this machine's measured ceiling, before and after the speed
changes, CLI start-up and the full `atb train` run, in one process run.

Prints:
1. the CPU, its SIMD width, and the ceiling: NumPy sgemm (best of sizes and repeats, with the BLAS
   kernel that ran), next to the theoretical FMA peak and TensorFlow's own 2048^2 matmul;
2. per default-variant model at input (60, 15), at batch 32 and 128: parameters, training FLOPs
   per window (analytical forward count x 3), windows/s, GFLOP/s, share of the sgemm ceiling and
   the CPU idle share (1 - process CPU time / (wall x cores)), under the settings of SETTINGS
   (interleaved): "before" (one step per execution, float32: the library when issue 14 was filed),
   "after" (the factory now: 16 steps per execution, precision auto, LSTMs fused where faster at the batch
   size), "unfused" (after with every LSTM in Keras' loop: the factory before the fused kernel) and one lever
   each: "float32"
   and "bf16" forced, and measured but not adopted "unrolled" LSTMs (recurrent families) and "xla"
   (jit_compile; Keras refuses it under op determinism, which the pipeline keeps on, so that row
   alone runs without determinism);
3. `atb --help` wall time and whether it imported TensorFlow;
4. with --full-run: `atb train model BTCUSDT --model-type tcn` (the README's command) wall time,
   epochs, best validation loss and peak memory.

Usage:
    python benchmarks/train_speed.py [--models tcn attention_lstm] [--batch-sizes 32 128]
        [--settings before after unfused float32 bf16] [--windows 4096] [--epochs 3] [--full-run [--before-tree DIR]]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

RECURRENT = ("lstm", "cnn_lstm", "attention_lstm", "embedding_lstm", "tft")
SETTINGS_HELP = ("before = 1 step per execution, float32 (the library when issue 14 was filed); after = the factory "
                 "now (16 steps per execution, precision auto: bf16 arithmetic for the families that declare it, on "
                 "CPUs with native bf16; LSTMs in the fused kernel where faster at the batch size); unfused = after "
                 "with every LSTM in Keras' loop; one lever each, on top of 16 steps per execution: float32 = after with "
                 "float32 forced; bf16 = after with bf16 forced for every family; measured, not adopted: unrolled = "
                 "LSTMs unrolled (slower tracing, export and ONNX inference), xla = jit_compile")
FAMILIES = ["lstm", "cnn_lstm", "attention_lstm", "embedding_lstm", "tcn", "tcn_attention", "transformer", "tft", "mamba", "xlstm"]


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


SETTINGS = ("before", "after", "unfused", "float32", "bf16", "unrolled", "xla")
"""The settings measured; see :data:`SETTINGS_HELP`."""


def _variant(model, name: str, setting: str, batch_size: int):
    """The model as trained under ``setting`` (see :data:`SETTINGS`); its ``jit_compile`` says whether XLA ran.

    ``after``, ``unfused`` and ``bf16`` go through the factory's own twin (``precision.training_twin``, with the
    LSTMs ``fused_layer_classes`` picks at ``batch_size`` for ``after``)."""
    import keras

    from ml.training_pipeline.fitting.precision import resolve_precision, training_twin
    from ml.training_pipeline.layers.fused_lstm import fused_layer_classes
    from ml.training_pipeline.models.registry import get_spec

    if setting in ("after", "unfused"):
        return training_twin(model, resolve_precision("auto", get_spec(name).training_precision, True),
                             fused_layer_classes(model, batch_size) if setting == "after" else {})
    if setting == "bf16":
        return training_twin(model, "mixed_bfloat16")
    if setting == "float32":
        return model
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "LSTM":
            layer["config"]["unroll"] = setting == "unrolled"
            if setting == "xla":
                layer["config"]["use_cudnn"] = False
    variant = keras.Model.from_config(config)
    variant.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0), loss=model.loss,
                    steps_per_execution=1 if setting == "before" else model.steps_per_execution,
                    jit_compile=setting == "xla")
    return variant


def training_throughput(name: str, batch_size: int, setting: str, windows: int = 4096, epochs: int = 3
                        ) -> tuple[float, float, int, float | None, bool]:
    """:func:`_throughput` under op determinism, except for ``xla``: Keras refuses XLA under determinism, which
    the pipeline keeps on, so that row alone runs without it."""
    import tensorflow as tf
    from tensorflow.python.framework.config import disable_op_determinism

    if setting == "xla":
        disable_op_determinism()
    try:
        return _throughput(name, batch_size, setting, windows, epochs)
    finally:
        tf.config.experimental.enable_op_determinism()


def _throughput(name: str, batch_size: int, setting: str, windows: int, epochs: int
                ) -> tuple[float, float, int, float | None, bool]:
    """(windows/s, CPU idle share, parameters, training FLOPs per window or None, whether XLA compiled the step)
    for one setting.

    The rate is the best of ``epochs`` timed epochs: this machine is shared, and the best epoch is the
    one least disturbed by other load (the usual practice for throughput).
    """
    import keras

    from ml.training_pipeline.common.hardware import forward_flops
    from ml.training_pipeline.common.windows import to_tf_dataset
    from ml.training_pipeline.models import create_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = create_model(name, input_shape=(60, 15), variant="default")
    x = {t.name: (rng.standard_normal((windows, *t.shape[1:])).astype(np.float32) if "float" in str(t.dtype)
                  else np.zeros((windows, *t.shape[1:]), np.int32)) for t in model.inputs}
    x = next(iter(x.values())) if len(x) == 1 else x
    y = rng.standard_normal(windows).astype(np.float32)
    model = _variant(model, name, setting, batch_size)
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
    return (windows / best[0], 1 - best[1] / (best[0] * cores), model.count_params(), 3 * forward if forward else None,
            bool(model.jit_compile))


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


def full_run(source_tree: str | None = None) -> dict:
    """Wall seconds, epochs, best validation loss and peak RSS (MB) of the README's main training command, run
    with this checkout's library or, given ``source_tree``, with the ``src`` of another checkout (an older commit,
    for a before/after in one run)."""
    env = dict(os.environ)
    if source_tree is not None:
        env["PYTHONPATH"] = str(Path(source_tree) / "src")
    with tempfile.TemporaryDirectory() as models_dir:
        command = [sys.executable, "-m", "ml.cli", "train", "model", "BTCUSDT", "--model-type", "tcn",
                   "--models-dir", models_dir]
        start = time.perf_counter()
        peak_kb = 0
        with tempfile.TemporaryFile("w+") as stderr:
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=env)
            # the child's own high-water mark: getrusage's ru_maxrss would include this (large) process's memory,
            # which Linux carries across fork and exec
            while child.poll() is None:
                peak_kb = max(peak_kb, _vm_hwm_kb(child.pid))
                time.sleep(0.2)
            wall = time.perf_counter() - start
            if child.returncode != 0:
                stderr.seek(0)
                raise RuntimeError(stderr.read()[-2000:])
        meta = json.loads(next(Path(models_dir).rglob("metadata.json")).read_text())
    history = meta["history"]
    return {"wall_s": wall, "epochs": len(history["loss"]), "best_val_loss": min(history["val_loss"]),
            "skill": meta["metrics"]["skill"], "precision": meta.get("training_precision", "float32"),
            "peak_mb": peak_kb / 1024}


def _vm_hwm_kb(pid: int) -> int:
    """A running process's peak resident memory (``VmHWM`` in ``/proc/PID/status``), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=FAMILIES)
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[32, 128])
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--windows", type=int, default=4096, help="windows per timed epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per setting (the best one counts)")
    parser.add_argument("--full-run", action="store_true")
    parser.add_argument("--before-tree", help="with --full-run: a checkout of an older commit (git worktree add "
                        "DIR COMMIT) whose library runs the same command first, for a before/after")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from ml.training_pipeline.common.hardware import cpu_info, describe_ceiling, measured_peak

    tf.random.set_seed(0)
    tf.config.experimental.enable_op_determinism()  # as the pipeline trains
    info, peak = cpu_info(), measured_peak()
    tf_peak = tf_matmul_flops()
    rows = []
    for name in args.models:
        for batch in args.batch_sizes:
            for setting in args.settings:  # interleaved: the settings of one row group see the same load
                if setting == "unrolled" and name not in RECURRENT:
                    continue
                try:
                    rows.append((name, batch, setting, *training_throughput(name, batch, setting, args.windows,
                                                                             args.epochs)))
                except Exception as error:  # a lever a family cannot take is a row that says so, not a crash
                    print(f"{name} batch {batch} {setting}: failed: {type(error).__name__}: {error}"[:300])
    help_s, help_heavy = help_time()

    print(f"\n{describe_ceiling(peak, info)}")
    print(f"TensorFlow's own 2048^2 matmul this run: {tf_peak / 1e9:.1f} GFLOP/s ({tf_peak / peak:.0%} of the ceiling)")
    print(f"training at input (60, 15), default variants, op determinism on, best of {args.epochs} epochs of "
          f"{args.windows} windows;")
    print(SETTINGS_HELP)
    header = (f"| {'model':<15}| batch | setting  |   params | MFLOP/window | windows/s | GFLOP/s | % of ceiling | "
              f"CPU idle | vs before |")
    print(header)
    print("|---|---|---|---|---|---|---|---|---|---|")
    for index, (name, batch, setting, rate, idle, params, flops, jit) in enumerate(rows):
        before = next((r for r in reversed(rows[:index + 1]) if r[0] == name and r[1] == batch and r[2] == "before"),
                      None)
        ratio = f"{rate / before[3]:.2f}x" if setting != "before" and before else ""
        if setting == "xla" and not jit:
            setting = "xla(off)"  # Keras refused XLA for one of the layers: the row ran without it
        gflops = f"{rate * flops / 1e9:7.1f}" if flops else "      -"
        share = f"{100 * rate * flops / peak:11.1f}%" if flops else "           -"
        mflop = f"{flops / 1e6:12.1f}" if flops else "           -"
        print(f"| {name:<15}| {batch:>5} | {setting:<8} | {params:>8,} | {mflop} | {rate:>9.0f} | {gflops} | {share} | "
              f"{idle:>7.1%} | {ratio:>12} |")
    print(f"\natb --help: {help_s * 1000:.0f} ms median of 5 (process start included); imports TensorFlow: {help_heavy}")
    if args.full_run:
        runs = ([("before", full_run(args.before_tree))] if args.before_tree else []) + [("now", full_run())]
        print("\natb train model BTCUSDT --model-type tcn (the README's command):")
        print("| library | wall s | epochs | best val_loss | skill vs persistence | precision | peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        for label, run in runs:
            print(f"| {label} | {run['wall_s']:.0f} | {run['epochs']} | {run['best_val_loss']:.5f} | {run['skill']:+.4f} | "
                  f"{run['precision']} | {run['peak_mb']:.0f} |")
        if len(runs) == 2:
            print(f"now vs before: {runs[0][1]['wall_s'] / runs[1][1]['wall_s']:.2f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
