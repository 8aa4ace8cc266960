"""Counters and latency samples for ``status`` (thread-safe, bounded memory)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

SAMPLES = 4096


def percentile(values, q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self.started = time.time()
        self.outcomes: Counter = Counter()   # ok, timeout, bad_request, ... per job
        self.events: Counter = Counter()     # replaced, recycled, retried, connections, ...
        self._job_seconds: deque = deque(maxlen=SAMPLES)
        self._queue_wait: deque = deque(maxlen=SAMPLES)
        self._reset_seconds: deque = deque(maxlen=SAMPLES)

    def job_done(self, outcome: str, seconds: float | None = None, queue_wait: float | None = None):
        with self._lock:
            self.outcomes[outcome] += 1
            if seconds is not None:
                self._job_seconds.append(seconds)
            if queue_wait is not None:
                self._queue_wait.append(queue_wait)

    def reset_done(self, seconds: float):
        """A browser's reset after a job took ``seconds`` (one that failed is counted as
        the event ``reset_unproven`` or ``replaced`` instead)."""
        with self._lock:
            self._reset_seconds.append(seconds)

    def typical_job_seconds(self) -> float | None:
        """The median of the recent jobs' durations (None before the first)."""
        with self._lock:
            jobs = list(self._job_seconds)[-256:]
        return percentile(jobs, 50)

    def count(self, event: str, n: int = 1):
        with self._lock:
            self.events[event] += n

    def snapshot(self) -> dict:
        with self._lock:
            jobs, waits = list(self._job_seconds), list(self._queue_wait)
            resets = list(self._reset_seconds)
            outcomes, events = dict(self.outcomes), dict(self.events)
        served = outcomes.get("ok", 0)
        return {
            "jobs": {"served": served, "failed": sum(outcomes.values()) - served, "by_outcome": outcomes},
            "events": events,
            "latency": {"p50": percentile(jobs, 50), "p99": percentile(jobs, 99), "samples": len(jobs)},
            "queue_wait": {"p50": percentile(waits, 50), "p99": percentile(waits, 99),
                           "max": max(waits) if waits else None},
            # seconds of the reset after each job; browsers it could not prove clean are
            # replaced and counted in events["reset_unproven"]
            "reset": {"p50": percentile(resets, 50), "p99": percentile(resets, 99), "samples": len(resets)},
        }
