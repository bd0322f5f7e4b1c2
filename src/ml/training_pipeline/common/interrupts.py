"""Ctrl-C that cannot be lost: an interrupt received at any point of a run forbids storing its version.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode of the main thread, and an exception raised
inside a finaliser or a callback from native code (an ONNX converter, a garbage-collection callback) is printed
and dropped: a run interrupted there would go on and store its version. :class:`InterruptGuard` records every
SIGINT it sees as well as raising it, so the store's last step (:meth:`InterruptGuard.check`, called just
before a version is renamed into place) refuses to commit even when the ``KeyboardInterrupt`` itself was lost.

Example:
    >>> with InterruptGuard() as guard:
    ...     guard.check()  # nothing received: returns
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class InterruptGuard:
    """Records SIGINT for the duration of a ``with`` block (main thread only; elsewhere it only re-raises)."""

    def __init__(self) -> None:
        self.received = False
        self._previous = None

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raises ``KeyboardInterrupt`` when an interrupt was received since the block began (even one swallowed)."""
        if self.received:
            raise KeyboardInterrupt
