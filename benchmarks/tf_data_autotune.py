"""tf.data autotune on and off for an in-memory training set: seconds for 6 epochs of a TCN.

Run: python benchmarks/tf_data_autotune.py. Alternates the two settings twice in one process, so
the ratio is measured under the same machine load. The pipeline's `to_tf_dataset` turns autotune off.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from ml.training_pipeline.models import create_model

WINDOWS, EPOCHS, BATCH = 8000, 6, 128


def dataset(x, y, autotune: bool):
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=1).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    if not autotune:
        options = tf.data.Options()
        options.autotune.enabled = False
        data = data.with_options(options)
    return data


def main() -> None:
    x = np.random.default_rng(0).standard_normal((WINDOWS, 60, 15)).astype("float32")
    y = x[:, -1, 0]
    times: dict[bool, list[float]] = {True: [], False: []}
    for autotune in (True, False, True, False):
        keras.utils.set_random_seed(0)
        model = create_model("tcn", (60, 15), variant="lightweight")
        model.fit(dataset(x, y, autotune), epochs=1, verbose=0)  # tracing outside the timing
        started = time.perf_counter()
        model.fit(dataset(x, y, autotune), epochs=EPOCHS, verbose=0)
        times[autotune].append(time.perf_counter() - started)
    print(f"tcn (lightweight), {WINDOWS} windows of (60, 15), batch {BATCH}, {EPOCHS} epochs, 2 repeats each")
    print(f"{'tf.data autotune':<18}{'best s':>8}{'s/epoch':>9}")
    for autotune in (True, False):
        best = min(times[autotune])
        print(f"{'on' if autotune else 'off (pipeline)':<18}{best:>8.2f}{best / EPOCHS:>9.2f}")
    print(f"speed-up: {min(times[True]) / min(times[False]):.2f}x")


if __name__ == "__main__":
    main()
