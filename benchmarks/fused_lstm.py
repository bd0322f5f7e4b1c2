"""One LSTM layer's training step, Keras' loop against the fused kernel (``FusedLSTM``), over a grid of sizes.

Each row times a forward and backward pass (gradients to the input and the weights) of one layer over 60 time
steps, both ways in one process (best of ``--repeats`` runs of 10 steps), and says whether
``fused_lstm_faster`` picks the fused kernel there. The grid is what :data:`FUSED_MAX_SHARD_MACS` was read from:
the fused kernel's cost grows faster than its arithmetic, so above some multiply-adds per time step and shard
it is slower than Keras' loop.

Usage:
    python benchmarks/fused_lstm.py [--inputs 15 64 128] [--units 32 64 128] [--batch-sizes 32 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def step_seconds(layer_class, units: int, x, repeats: int) -> float:
    """Best seconds per training step of one ``layer_class(units, return_sequences=True)`` on ``x``."""
    import tensorflow as tf

    layer = layer_class(units, return_sequences=True)
    layer(x)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, training=True)))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    for _ in range(3):
        step(x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            step(x)
        best = min(best, (time.perf_counter() - start) / 10)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", nargs="+", type=int, default=[15, 64, 128])
    parser.add_argument("--units", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from ml.training_pipeline.common.hardware import available_cores, cpu_info
    from ml.training_pipeline.layers.fused_lstm import FusedLSTM, fused_lstm_faster

    info = cpu_info()
    print(f"{info.model}, {info.cores} cores, {info.simd}")
    cores = available_cores()
    print(f"one LSTM layer, 60 time steps, forward + backward; fused: one BlockLSTMV2 per shard, {cores} shards")
    print("| inputs | units | batch | MACs per step and shard | Keras loop ms | fused ms | fused speed-up | "
          "chosen |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for inputs in args.inputs:
        for units in args.units:
            for batch in args.batch_sizes:
                x = tf.constant(rng.standard_normal((batch, 60, inputs)).astype("float32"))
                stock = step_seconds(keras.layers.LSTM, units, x, args.repeats)
                fused = step_seconds(FusedLSTM, units, x, args.repeats)
                macs = -(-batch // min(cores, batch)) * 4 * units * (inputs + units)
                chosen = "fused" if fused_lstm_faster(units, inputs, batch, cores) else "loop"
                print(f"| {inputs} | {units} | {batch} | {macs / 1e6:.2f}M | {stock * 1e3:.2f} | {fused * 1e3:.2f} | "
                      f"{stock / fused:.2f}x | {chosen} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
