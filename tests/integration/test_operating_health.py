"""Operating it (issue 15, items 3, 7, 8): a full pool slows work down instead of failing
it; metrics and health over HTTP; canaries find broken idle browsers; the systemd watchdog.
Real daemons, real Chromium, pages on 127.0.0.1."""

from __future__ import annotations

import time

from browserd_client import Backoff, Client


def test_a_full_pool_queues_fast_jobs_behind_slow_ones_until_their_deadline(start_daemon, pages):
    """2 browsers, 4 slow (12 s) and then 4 fast URLs, 8 in flight, 60 s each: every URL
    succeeds and the daemon refuses none (with a fixed 10 s queue_wait the fast ones, queued
    behind the slow ones, got `busy`)."""
    daemon = start_daemon(2)

    def urls():
        # Slow: the page's marker is built 12 s after it loads, and the job waits for it.
        for i in range(4):
            yield pages.url("/js", m=f"slow{i}", delay="12000")
        deadline = time.monotonic() + 30
        while daemon.status()["browsers"]["active_jobs"] < 4:  # the slow ones are in first
            assert time.monotonic() < deadline, "the slow jobs never reached the daemon"
            time.sleep(0.05)
        for i in range(4):
            yield pages.url("/js", m=f"fast{i}", delay="0")

    t0 = time.monotonic()
    with Client(state_dir=daemon.state_dir, timeout=60) as c:
        results = list(c.map(urls(), concurrency=8, timeout=60, wait_for="#built"))
    codes = sorted((r.code or "ok") for r in results)
    waits = sorted(round(r.result.timing["queue_wait"], 1) for r in results if r.ok)
    by_outcome = daemon.status()["jobs"]["by_outcome"]
    print(f"outcomes {codes}, queue waits {waits}, daemon {by_outcome}, wall {time.monotonic() - t0:.1f}s")
    assert codes == ["ok"] * 8
    assert by_outcome.get("busy", 0) == 0
