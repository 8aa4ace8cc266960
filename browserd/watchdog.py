"""One thread that runs callbacks at deadlines (job hard deadlines, reset limits)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time

logger = logging.getLogger(__name__)


class Watchdog:
    """Runs callbacks at monotonic deadlines on one thread (``arm``/``disarm`` from any
    thread). A callback must be quick: the next deadline waits for it."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list = []
        self._cancelled: set = set()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def arm(self, when: float, callback) -> int:
        """Run ``callback()`` at monotonic time ``when`` unless disarmed first."""
        with self._cond:
            handle = next(self._seq)
            heapq.heappush(self._heap, (when, handle, callback))
            self._cond.notify()
            return handle

    def disarm(self, handle: int) -> None:
        """Cancel the callback ``handle`` (from :meth:`arm`); a no-op once it ran."""
        with self._cond:
            if any(h == handle for _, h, _ in self._heap):
                self._cancelled.add(handle)

    def stop(self) -> None:
        """Stop the thread (callbacks not yet due never run); waits up to 5 s."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap:
                        delay = self._heap[0][0] - self._clock()
                        if delay <= 0:
                            break
                        self._cond.wait(delay)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                _, handle, callback = heapq.heappop(self._heap)
                if handle in self._cancelled:
                    self._cancelled.discard(handle)
                    continue
            try:
                callback()
            except Exception:
                logger.exception("watchdog callback failed")
