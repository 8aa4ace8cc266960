"""Exponential backoff with full jitter, bounded by attempts and by a deadline.

The shape of urllib3's ``Retry``: the n-th wait is ``uniform(0, min(cap, base * 2**n))``
("full jitter"), so a burst of clients that were refused together spread out instead of
coming back together.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    attempts: int = 8          #: tries in all, the first included
    base: float = 0.05         #: seconds; the cap of the first wait
    cap: float = 2.0           #: no single wait is longer than this
    deadline: float = 30.0     #: seconds from the first try; no try starts after it

    def delays(self, rng: random.Random | None = None):
        """Yield the wait before each retry (``attempts - 1`` of them at most)."""
        rng = rng or random
        for n in range(self.attempts - 1):
            yield rng.uniform(0, min(self.cap, self.base * (2 ** n)))


class RetryBudget:
    """Counts tries of one operation and sleeps between them."""

    def __init__(self, policy: Backoff, clock=time.monotonic, sleep=time.sleep, rng=None):
        self.policy = policy
        self._clock, self._sleep = clock, sleep
        self._start = clock()
        self._delays = policy.delays(rng)
        self.tries = 0

    def remaining(self) -> float:
        return self.policy.deadline - (self._clock() - self._start)

    def wait(self) -> bool:
        """Sleep before the next try; False when the budget is spent (no sleep then)."""
        delay = next(self._delays, None)
        if delay is None:
            return False
        remaining = self.remaining()
        if remaining <= 0:
            return False
        self._sleep(min(delay, remaining))
        return self.remaining() > 0
