"""Counters and latency samples for ``status`` (thread-safe, bounded memory)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

SAMPLES = 4096
#: Upper bounds (seconds) of the histogram buckets of job latency and queue wait (/metrics).
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class Histogram:
    """Cumulative counts per bucket, a sum and a count: Prometheus's histogram, counted once."""

    __slots__ = ("counts", "sum", "count")

    def __init__(self):
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one value (seconds)."""
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> dict:
        """``{"buckets": [(upper bound, cumulative count)], "sum", "count"}``."""
        return {"buckets": list(zip(BUCKETS, self.counts)), "sum": self.sum, "count": self.count}


def percentile(values, q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values`` by nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Stats:
    """The daemon's counters and recent samples (the last ``SAMPLES`` of each), shared by
    every thread; each method takes the lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self.started = time.time()
        self.outcomes: Counter = Counter()   # ok, timeout, bad_request, ... per job
        self.events: Counter = Counter()     # replaced, recycled, retried, connections, ...
        self._job_seconds: deque = deque(maxlen=SAMPLES)
        self._queue_wait: deque = deque(maxlen=SAMPLES)
        self._reset_seconds: deque = deque(maxlen=SAMPLES)
        self.by_site: Counter = Counter()    # (site, outcome) -> jobs
        self.resets = 0                      # resets done (each browser's, after each job)
        self._job_hist, self._wait_hist = Histogram(), Histogram()

    def job_done(self, outcome: str, seconds: float | None = None, queue_wait: float | None = None,
                 site: str = "-"):
        """Count one job's ``outcome`` (``ok`` or an error code) for ``site``; ``seconds`` (its
        duration, served jobs only) and ``queue_wait`` are sampled when given."""
        with self._lock:
            self.outcomes[outcome] += 1
            self.by_site[(site, outcome)] += 1
            if seconds is not None:
                self._job_seconds.append(seconds)
                self._job_hist.observe(seconds)
            if queue_wait is not None:
                self._queue_wait.append(queue_wait)
                self._wait_hist.observe(queue_wait)

    def reset_done(self, seconds: float):
        """A browser's reset after a job took ``seconds`` (one that failed is counted as
        the event ``reset_unproven`` or ``replaced`` instead)."""
        with self._lock:
            self._reset_seconds.append(seconds)
            self.resets += 1

    def typical_job_seconds(self) -> float | None:
        """The median of the recent jobs' durations (None before the first)."""
        with self._lock:
            jobs = list(self._job_seconds)[-256:]
        return percentile(jobs, 50)

    def count(self, event: str, n: int = 1):
        """Add ``n`` to the counter of ``event`` (replaced, recycled, connections, ...)."""
        with self._lock:
            self.events[event] += n

    def counters(self) -> dict:
        """What /metrics exposes beyond ``snapshot``: jobs by site and outcome, resets,
        and the latency and queue-wait histograms (counted once, in :meth:`job_done`)."""
        with self._lock:
            return {"by_site": dict(self.by_site), "resets": self.resets,
                    "latency": self._job_hist.snapshot(), "queue_wait": self._wait_hist.snapshot()}

    def snapshot(self) -> dict:
        """The ``jobs``, ``events``, ``latency``, ``queue_wait`` and ``reset`` parts of the
        status reply (docs/status.md)."""
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
            # seconds of the reset after each job (resets that proved the browser clean);
            # "unproven": browsers replaced because their reset could not prove them clean
            # (also events["reset_unproven"], which is left out while 0)
            "reset": {"p50": percentile(resets, 50), "p99": percentile(resets, 99), "samples": len(resets),
                      "unproven": events.get("reset_unproven", 0)},
        }
