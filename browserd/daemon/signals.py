"""Signals for the Arbiter's loop: the handler only queues the signal and wakes the loop
through a pipe (the self-pipe trick, as gunicorn's Arbiter); the loop dispatches."""

from __future__ import annotations

import os
import select
import signal


class SignalQueue:
    """Queues the signals the daemon handles; :meth:`wait` returns them in order. The
    handler runs on the main thread between bytecodes, :meth:`wait` on the same thread."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)

    def __init__(self):
        self._pending: list[int] = []
        self._wake_r: int | None = None
        self._wake_w: int | None = None

    def install(self) -> None:
        """Create the wake-up pipe and install the handler for :attr:`SIGNALS`."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        for sig in self.SIGNALS:
            signal.signal(sig, self._queue)

    def _queue(self, signum, frame) -> None:
        self._pending.append(signum)
        try:
            os.write(self._wake_w, b"s")
        except OSError:
            pass

    def wait(self, timeout: float) -> list[signal.Signals]:
        """The signals queued, waiting up to ``timeout`` seconds for one (0: do not
        wait); empty when none came or before :meth:`install`."""
        if self._wake_r is None:
            return []
        if select.select([self._wake_r], [], [], timeout)[0]:
            os.read(self._wake_r, 512)
        taken = []
        while self._pending:
            taken.append(signal.Signals(self._pending.pop(0)))
        return taken
