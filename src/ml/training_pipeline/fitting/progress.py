"""Epoch lines a person can read in a log file: elapsed time and an estimate of what is left.

Keras' own ``verbose=2`` lines are printed without flushing, so piped to a file they arrive in
bursts, and they never say how long the run may still take. This callback prints one flushed line
per epoch with the run's elapsed time, the most time left (the remaining epochs at the mean
epoch time so far) and, where early stopping watches the run, when it stops if the monitored value does
not improve again (``patience`` epochs after its best): the honest expectation, since most runs end there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress_callback(total_epochs: int, write: Callable[[str], None] | None = None, *, patience: int | None = None,
                      monitor: str = "val_loss", mode: str = "min", clock: Callable[[], float] = time.perf_counter,
                      within_epoch_s: float = 5.0):
    """A Keras callback printing ``epoch 3/80: loss 0.91, val_loss 0.95 | 4.1 s/epoch, elapsed 12 s, at most 5.2 min
    left; stops after epoch 12 (37 s) unless val_loss improves``.

    Args:
        total_epochs: the run's most epochs (across curriculum phases too; Keras' epoch index is global).
        write: where lines go (default: ``print(..., flush=True)``).
        patience: early stopping's patience on ``monitor`` (``None``: no early stopping to expect).
        monitor: the value early stopping watches; ``mode``: ``"min"`` or ``"max"``.
        clock: seconds (a fake one in tests).
        within_epoch_s: inside an epoch, a line with the batches done and the epoch's time left at most this often.

    Example:
        >>> model.fit(x, y, epochs=80, verbose=0, callbacks=[progress_callback(80, patience=10)])  # doctest: +SKIP
    """
    import keras

    print_line = write or (lambda line: print(line, flush=True))
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)

    class EpochProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.started = None
            self.epochs_done = 0
            self.best: float | None = None
            self.best_epoch = 0
            self.lock = threading.Lock()
            self.last_line = clock()
            self.phase, self.phase_started = "", clock()
            self.watching = None

        def say(self, line: str) -> None:
            with self.lock:
                print_line(line)
                self.last_line = clock()

        def enter(self, phase: str) -> None:
            self.phase, self.phase_started = phase, clock()

        def on_train_begin(self, logs=None):
            # what no batch reports: the first batch's graph tracing, the validation pass at each epoch's end
            self.enter(f"epoch 1/{total_epochs}: the first batch (traces the graph)")
            self.watching = threading.Event()
            threading.Thread(target=self.watch, args=(self.watching,), name="epoch progress", daemon=True).start()

        def watch(self, stopped: threading.Event) -> None:
            # 1.5x: between batches that end, their own lines (every within_epoch_s) come first
            while not stopped.wait(min(1.0, within_epoch_s)):
                if clock() - self.last_line >= 1.5 * within_epoch_s:
                    self.say(f"{self.phase}, {_duration(clock() - self.phase_started)} so far")

        def on_train_end(self, logs=None):
            if self.watching is not None:
                self.watching.set()

        def on_epoch_begin(self, epoch, logs=None):
            if self.started is None:
                self.started = clock()
            if epoch:
                self.enter(f"epoch {epoch + 1}/{total_epochs}: the first batch")
            # a slow epoch (a TFT on CPU: minutes) says where it is every few seconds, not only at its end
            self.within = step_progress(self.say, f"epoch {epoch + 1}/{total_epochs}: batches", every_s=within_epoch_s,
                                        clock=clock, first_step_traces=epoch == 0)

        def on_train_batch_end(self, batch, logs=None):
            steps = (self.params or {}).get("steps")
            self.enter(f"epoch {self.epochs_done + 1}/{total_epochs}: batch {batch + 2}{f' of {steps}' if steps else ''}")
            if steps and batch + 1 < steps:
                self.within(batch + 1, steps)

        def on_test_begin(self, logs=None):
            self.enter(f"epoch {self.epochs_done + 1}/{total_epochs}: validation")

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_done += 1
            elapsed = clock() - self.started
            per_epoch = elapsed / self.epochs_done
            left_epochs = max(0, total_epochs - (epoch + 1))
            values = ", ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
            line = (f"epoch {epoch + 1}/{total_epochs}: {values} | {per_epoch:.1f} s/epoch, elapsed "
                    f"{_duration(elapsed)}, at most {_duration(left_epochs * per_epoch)} left")
            value = (logs or {}).get(monitor)
            if patience is not None and isinstance(value, (int, float)):
                if self.best is None or better(value, self.best):
                    self.best, self.best_epoch = float(value), epoch + 1
                stop = min(total_epochs, self.best_epoch + patience)
                if stop < total_epochs:
                    line += (f"; stops after epoch {stop} ({_duration(max(0, stop - epoch - 1) * per_epoch)}) unless "
                             f"{monitor} improves")
            self.say(line)
            self.enter(f"epoch {epoch + 2}/{total_epochs}: starting (callbacks)")
            if self.epochs_done == 1 and total_epochs > 1:
                early = "" if patience is None or patience + 1 >= total_epochs else (
                    f"; {_duration((patience + 1) * per_epoch)} if {monitor} never improves on this epoch (early "
                    f"stopping after {patience} more)")
                self.say(f"estimate: at most {_duration(per_epoch * total_epochs)} for {total_epochs} epochs{early}")

    return EpochProgress()


def step_progress(write: Callable[[str], None], what: str, every_s: float = 5.0,
                  clock: Callable[[], float] = time.perf_counter, *,
                  first_step_traces: bool = False) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callable for a long loop of equal steps (Monte-Carlo passes, folds, trials): a
    line at most every ``every_s`` seconds and at the end, with the time left at the mean step time so far.

    Args:
        write: called with each line.
        what: the line's start.
        every_s: the least time between two lines (the last line always comes).
        clock: seconds, for tests.
        first_step_traces: the first step also traces the compiled function (a TFT's first batch: 15 s, the
            next ones 1 s): the time left comes from the steps after it, and none is guessed from it alone.

    Example:
        >>> now = [0.0]
        >>> progress = step_progress(print, "sampling", clock=lambda: now[0])
        >>> for done in range(1, 5):
        ...     now[0] += 3.0
        ...     progress(done, 4)
        sampling: 2/4, elapsed 6 s, about 6 s left
        sampling: 4/4, elapsed 12 s, done
    """
    started, last, first = clock(), [None], [None, 0]  # when the first report came, and its step count

    def progress(done: int, total: int) -> None:
        now = clock()
        if first[0] is None:
            first[:] = [now, done]
        if done < total and now - (started if last[0] is None else last[0]) < every_s:
            return
        last[0] = now
        elapsed = now - started
        if done >= total:
            left = "done"
        elif not first_step_traces:
            left = f"about {_duration(elapsed / max(done, 1) * (total - done))} left"
        elif done > first[1]:
            left = f"about {_duration((now - first[0]) / (done - first[1]) * (total - done))} left"
        else:
            left = "the first step traces the graph; time left after the next ones"
        write(f"{what}: {done}/{total}, elapsed {_duration(elapsed)}, {left}")

    return progress



@contextmanager
def heartbeat(write: Callable[[str], None] | None, what: str, every_s: float = 5.0,
              clock: Callable[[], float] = time.perf_counter) -> Iterator[None]:
    """Lines from a background thread while one opaque call runs (an ONNX conversion, a graph trace): its elapsed
    time every ``every_s`` seconds, and how long it took when it ran past one line. A call that ends sooner
    prints nothing. There is no time left to say: such a call reports no steps to divide by.

    Example:
        >>> with heartbeat(print, "export: converting", every_s=0.05):
        ...     time.sleep(0.3)  # doctest: +ELLIPSIS
        export: converting, ... s so far
        ...
        export: converting, done in ... s
    """
    if write is None:
        yield
        return
    started, finished, beats = clock(), threading.Event(), [0]

    def beat() -> None:
        while not finished.wait(every_s):
            beats[0] += 1
            write(f"{what}, {_seconds(clock() - started)} so far")

    thread = threading.Thread(target=beat, name=f"heartbeat: {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()
        if beats[0]:
            write(f"{what}, done in {_seconds(clock() - started)}")


def _seconds(seconds: float) -> str:
    """Like :func:`_duration`, with a decimal under 10 s (a heartbeat's lines can be that close)."""
    return f"{seconds:.1f} s" if seconds < 10 else _duration(seconds)

def terminal_progbar():
    """Keras' progress bar for a terminal, never past its end: with ``steps_per_execution`` > 1 Keras reports the
    step after each execution (16 of 15 steps, "-1s" left); the step is clamped to the epoch's steps.

    Example:
        >>> model.fit(x, y, verbose=1, callbacks=[terminal_progbar()])  # doctest: +SKIP
    """
    import keras

    class ClampedProgbar(keras.callbacks.ProgbarLogger):
        def on_train_batch_end(self, batch, logs=None):
            steps = self.target  # the epoch's steps (ProgbarLogger keeps them here, not in self.params)
            super().on_train_batch_end(min(batch, steps - 1) if steps else batch, logs)

    return ClampedProgbar()
