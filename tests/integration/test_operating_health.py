"""Operating it (issue 15, items 3, 7, 8): a full pool slows work down instead of failing
it; metrics and health over HTTP; canaries find broken idle browsers; the systemd watchdog.
Real daemons, real Chromium, pages on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

from browserd_client import Client
from tests.conftest import BROWSERD, run_cli


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


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, no proxy
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_over_http_and_the_socket_count_the_jobs_served(start_daemon, pages):
    daemon = start_daemon(2, "--metrics-listen", "127.0.0.1:0")
    base = daemon.status()["metrics_url"]
    with daemon.client() as c:
        for i in range(3):
            c.fetch(pages.url("/static", m=f"metrics{i}"))
        refused = c.fetch  # the browsers may not reach the metrics port (like the daemon's own)
        try:
            refused(base + "/metrics")
            code = "ok"
        except Exception as exc:  # noqa: BLE001 - the code is what matters
            code = getattr(exc, "code", repr(exc))
    status, text = _get(base + "/metrics")
    assert status == 200
    m = _samples(text)
    print(f"{len(m)} samples; jobs {[(k, v) for k, v in m.items() if k[0] == 'browserd_jobs_total']}")
    assert code == "forbidden_url"
    assert m[("browserd_jobs_total", (("outcome", "ok"), ("site", "generic")))] == 3
    assert m[("browserd_jobs_total", (("outcome", "forbidden_url"), ("site", "generic")))] == 1
    assert m[("browserd_job_duration_seconds_count", ())] == 3
    assert m[("browserd_queue_wait_seconds_count", ())] == 3
    assert m[("browserd_browsers_configured", ())] == 2
    assert m[("browserd_browser_replacements_total", ())] == 0
    assert ("browserd_queue_depth", ()) in m and ("browserd_connections", ()) in m
    assert sum(v for (name, _), v in m.items() if name == "browserd_browsers") >= 2
    assert _get(base + "/healthz")[0] == 200 and _get(base + "/readyz") == (200, "ready\n")
    # The same text over the authenticated socket, for machines without the HTTP port.
    cli = run_cli("metrics", state_dir=daemon.state_dir)
    assert cli.returncode == 0, cli.stderr
    assert _samples(cli.stdout)[("browserd_jobs_total", (("outcome", "ok"), ("site", "generic")))] == 3


def test_readyz_answers_503_while_the_daemon_drains(start_daemon, pages):
    daemon = start_daemon(1, "--metrics-listen", "127.0.0.1:0")
    base = daemon.status()["metrics_url"]
    assert _get(base + "/readyz")[0] == 200
    held = {}

    def hold():
        with daemon.client() as c:
            held["result"] = c.fetch(pages.url("/js", m="held", delay="6000"), wait_for="#built")

    t = threading.Thread(target=hold)
    t.start()
    deadline = time.monotonic() + 30
    while daemon.status()["browsers"]["active_jobs"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop = subprocess.Popen(BROWSERD + ["stop", "--state-dir", daemon.state_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.monotonic() + 30
    while not seen or seen[-1][0] != 503:
        assert time.monotonic() < deadline, f"/readyz never said 503: {seen[-3:]}"
        seen.append(_get(base + "/readyz"))
        time.sleep(0.05)
    print(f"/readyz during drain: {seen[-1]}")
    assert seen[-1] == (503, "draining\n")
    out, err = stop.communicate(timeout=60)
    assert stop.returncode == 0, err
    t.join(30)
    assert held["result"].title  # the held job was served through the drain


def test_the_canary_replaces_a_frozen_idle_browser_before_any_job_fails_on_it(start_daemon, pages):
    """Chromium's main process of one idle browser is frozen (SIGSTOP: alive for /proc, dead
    for every command); the canary (every 1 s) finds it and it is replaced; then every job
    succeeds."""
    daemon = start_daemon(2, "--canary-interval", "1")
    with open(os.path.join(daemon.state_dir, "browsers.json")) as f:
        victim = json.load(f)["browsers"][0]
    os.kill(victim["chromium_pid"], signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        deadline = t0 + 60
        while True:
            status = daemon.status()
            ids = {b["id"] for b in status["browsers"]["browsers"]}
            if victim["id"] not in ids and status["browsers"]["total"] == 2:
                break
            assert time.monotonic() < deadline, f"the frozen browser was not replaced: {status['events']}"
            time.sleep(0.1)
    finally:
        try:
            os.kill(victim["chromium_pid"], signal.SIGCONT)
        except ProcessLookupError:
            pass
    print(f"frozen browser {victim['id']} replaced after {time.monotonic() - t0:.1f}s; events {status['events']}")
    assert status["events"].get("canary_failed", 0) >= 1
    with daemon.client() as c:
        for i in range(4):
            assert c.fetch(pages.url("/static", m=f"after{i}")).title == f"static after{i}"
    assert daemon.status()["jobs"]["by_outcome"] == {"ok": 4}


def test_run_sends_watchdog_pings_to_systemd_while_serving(tmp_path, pages):
    """`browserd run` with NOTIFY_SOCKET and WATCHDOG_USEC=1 s: READY=1, then WATCHDOG=1
    (every 0.5 s) while it serves."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1.0)
    state_dir = str(tmp_path / "state")
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    env.pop("BROWSERD_STATE_DIR", None)
    proc = subprocess.Popen(BROWSERD + ["run", "--browsers", "1", "--state-dir", state_dir], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while seen.count("WATCHDOG=1") < 3:
            assert time.monotonic() < deadline and proc.poll() is None, f"no watchdog pings: {seen}"
            try:
                seen.extend(sock.recv(4096).decode().splitlines())
            except socket.timeout:
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        sock.close()
    print(f"notifications: {seen[:6]} ...; exit {proc.returncode}")
    assert "READY=1" in seen and seen.index("READY=1") < seen.index("WATCHDOG=1")
    assert proc.returncode == 0, err[-2000:]
