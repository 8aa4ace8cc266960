"""No zombies and no orphans after many recycles and crash replacements."""

from __future__ import annotations

import os
import signal
import time

from tests.stress.conftest import scaled
from tests.support.procs import zombie_children


def _whole(daemon, n, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        s = daemon.status()
        b = s["browsers"]
        if b["total"] == n and b["idle"] == n and not b["starting"]:
            return s
        assert time.monotonic() < deadline, b
        time.sleep(0.05)


def test_50_recycles_and_10_crashes_leave_no_defunct_child(start_daemon, pages):
    recycles, crashes = scaled(50), scaled(10)
    daemon = start_daemon(2, env={"BROWSERD_RECYCLE_AFTER": "1"})
    with daemon.client() as c:
        for i in range(recycles):
            assert f"Z{i}" in c.page_source(pages.url("/static", m=f"Z{i}"))
    status = _whole(daemon, 2)
    assert status["events"]["recycled"] >= recycles
    for n in range(crashes):
        victim = status["browsers"]["browsers"][n % 2]
        os.kill(victim["chromium_pid" if n % 2 else "driver_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while daemon.status()["events"].get("replaced", 0) < n + 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status = _whole(daemon, 2)
    defunct = zombie_children(daemon.pid)
    print(f"\n{status['events']}; daemon's zombie children: {defunct}")
    assert status["events"]["replaced"] == crashes
    assert not defunct
