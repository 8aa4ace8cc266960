"""No leaks: over 2000 jobs of every kind, descriptors, threads, processes and memory
come back to their level after warm-up."""

from __future__ import annotations

import threading
import time

import psutil

from browserd_client import Backoff, BrowserdError, Client
from browserd_client import protocol
from browserd_client.state import read_authkey
from browserd.browser import total_rss
from tests.stress.conftest import scaled
from tests.support.procs import ours


def _rss_mb(state_dir: str, daemon_pid: int) -> float:
    return total_rss(ours(state_dir)) / 2**20


def _sample(daemon):
    proc = psutil.Process(daemon.pid)
    browsers = [p for p in ours(daemon.state_dir) if p.pid != daemon.pid]
    # Each connection a browser keeps open through the egress proxy (Chromium's idle
    # keep-alive ones to the page server) holds 2 of the daemon's fds: not a leak.
    tunnels = daemon.status().get("egress_tunnels", 0)
    return {"fds": proc.num_fds() - 2 * tunnels, "threads": proc.num_threads(), "procs": len(browsers),
            "rss_mb": round(_rss_mb(daemon.state_dir, daemon.pid), 1)}


def _quiet(daemon, n, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        b = daemon.status()["browsers"]
        if b["idle"] == n and b["total"] == n and not b["starting"] and not b["resetting"] and not b["active_jobs"]:
            return
        assert time.monotonic() < deadline, b
        time.sleep(0.05)


def _disconnect_mid_job(daemon, url):
    sock = protocol.connect(daemon.address, 5)
    conn = protocol.FrameSocket(sock)
    with conn.deadline_in(5):
        protocol.client_handshake(conn, read_authkey(daemon.state_dir))
        conn.send_bytes(protocol.encode_request(1, "fetch", {"url": url, "timeout": 30}))
    time.sleep(0.05)  # let the job start; then leave without reading the answer
    sock.close()


def _mixed_load(daemon, pages, jobs: int, threads: int = 4):
    """``jobs`` jobs over ``threads`` client threads: 85% fetches, 5% timeouts,
    5% bad requests, 5% clients that leave mid-job."""
    counts = {"ok": 0, "timeout": 0, "bad": 0, "gone": 0, "unexpected": []}
    lock = threading.Lock()

    def worker(w):
        client = Client(state_dir=daemon.state_dir, retry=Backoff(attempts=20, deadline=60))
        for i in range(w, jobs, threads):
            kind = i % 20
            try:
                if kind == 0:
                    try:
                        client.fetch(pages.url("/slow", s=5), timeout=0.5)
                        raise AssertionError("slow page did not time out")
                    except BrowserdError as exc:
                        assert exc.code == "timeout", exc
                    key = "timeout"
                elif kind == 1:
                    try:
                        client.fetch("file:///etc/passwd")
                    except BrowserdError as exc:
                        assert exc.code == "forbidden_url"
                    key = "bad"
                elif kind == 2:
                    _disconnect_mid_job(daemon, pages.url("/slow", s=5))
                    key = "gone"
                else:
                    assert f"L{i}" in client.page_source(pages.url("/static", m=f"L{i}"))
                    key = "ok"
                with lock:
                    counts[key] += 1
            except Exception as exc:  # noqa: BLE001 - collected for the assert
                with lock:
                    counts["unexpected"].append(repr(exc)[:200])
        client.close()

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(3600)
    return counts


def test_2000_mixed_jobs_leak_no_fds_threads_processes_or_memory(start_daemon, pages):
    daemon = start_daemon(2, env={"BROWSERD_RECYCLE_AFTER": "0", "BROWSERD_RECYCLE_RSS_MB": "0"})
    total = scaled(2000)
    warmup = _mixed_load(daemon, pages, 200)
    assert not warmup["unexpected"], warmup["unexpected"][:5]
    _quiet(daemon, 2)
    before = _sample(daemon)
    t0 = time.monotonic()
    counts = _mixed_load(daemon, pages, total)
    elapsed = time.monotonic() - t0
    _quiet(daemon, 2)
    after = _sample(daemon)
    status = daemon.status()
    drift = (after["rss_mb"] - before["rss_mb"]) / before["rss_mb"] * 100
    print(f"\n{total} jobs in {elapsed:.0f}s: {dict((k, v) for k, v in counts.items() if k != 'unexpected')}, "
          f"{len(counts['unexpected'])} unexpected")
    print(f"after warm-up {before}\nafter load    {after}\nRSS drift {drift:+.1f}%; "
          f"status jobs {status['jobs']['by_outcome']}, events {status['events']}")
    assert not counts["unexpected"], counts["unexpected"][:5]
    assert abs(after["fds"] - before["fds"]) <= 5
    assert abs(after["threads"] - before["threads"]) <= 5
    assert abs(after["procs"] - before["procs"]) <= 2, "browser process count changed"
    assert abs(drift) <= 15
