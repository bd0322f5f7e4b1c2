"""Epoch lines a person can read in a log file: elapsed time and an estimate of what is left.

Keras' own ``verbose=2`` lines are printed without flushing, so piped to a file they arrive in
bursts, and they never say how long the run may still take. This callback prints one flushed line
per epoch with the run's elapsed time and the most time left (the remaining epochs at the mean
epoch time so far; early stopping usually ends sooner), and after the first epoch a run-level
estimate.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress_callback(total_epochs: int, write: Callable[[str], None] | None = None):
    """A Keras callback printing ``epoch 3/80: loss 0.91, val_loss 0.95 | 4.1 s/epoch, elapsed 12 s, at most 5.2 min left``.

    Args:
        total_epochs: the run's most epochs (across curriculum phases too; Keras' epoch index is global).
        write: where lines go (default: ``print(..., flush=True)``).

    Example:
        >>> model.fit(x, y, epochs=80, verbose=0, callbacks=[progress_callback(80)])  # doctest: +SKIP
    """
    import keras

    write = write or (lambda line: print(line, flush=True))

    class EpochProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.started = None
            self.epochs_done = 0

        def on_epoch_begin(self, epoch, logs=None):
            if self.started is None:
                self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_done += 1
            elapsed = time.perf_counter() - self.started
            per_epoch = elapsed / self.epochs_done
            left = max(0, total_epochs - (epoch + 1)) * per_epoch
            values = ", ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
            write(f"epoch {epoch + 1}/{total_epochs}: {values} | {per_epoch:.1f} s/epoch, elapsed "
                  f"{_duration(elapsed)}, at most {_duration(left)} left")
            if self.epochs_done == 1 and total_epochs > 1:
                write(f"estimate: the whole run takes at most {_duration(per_epoch * total_epochs)} "
                      "(early stopping usually ends it sooner)")

    return EpochProgress()
