"""start / stop / run as an operator sees them: exit codes, one-line errors, no leftovers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

import psutil

from browserd_client import Client, ShuttingDown
from tests.support.procs import browser_records
from tests.conftest import BROWSERD, assert_nothing_left, run_cli
from tests.support.procs import ours, wait_gone


def _one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {result.stderr!r}"
    assert lines[0].startswith("browserd: ")
    return lines[0]


def test_start_prints_pid_and_address_and_stop_leaves_nothing(start_daemon, pages):
    daemon = start_daemon(1)
    assert f"pid {daemon.pid}" in daemon.start_output and str(daemon.address["port"]) in daemon.start_output
    with daemon.client() as c:
        assert "X1" in c.page_source(pages.url("/static", m="X1"))
    pids = [p.pid for p in daemon.processes()]
    assert daemon.pid in pids and len(pids) > 3
    result = daemon.stop()
    assert result.returncode == 0 and f"stopped (pid {daemon.pid})" in result.stdout
    assert_nothing_left(daemon.state_dir, pids)
    assert sorted(os.listdir(daemon.state_dir)) == ["authkey", "browserd.log"]
    again = daemon.stop()
    assert again.returncode == 0 and "not running" in again.stdout


def test_browsers_start_under_a_tmpdir_too_long_for_chromiums_socket(start_daemon, pages, tmp_path):
    """Chromium binds a Unix socket under $TMPDIR, at most 107 bytes long; a scraper's deep
    $TMPDIR (pytest's tmp_path, a CI workspace) must not make every browser fail to start."""
    long_tmp = tmp_path / ("t" * 60) / ("u" * 60)
    long_tmp.mkdir(parents=True)
    assert len(str(long_tmp)) + 47 > 107
    daemon = start_daemon(1, env={"TMPDIR": str(long_tmp)})
    with daemon.client() as c:
        assert "TMP1" in c.page_source(pages.url("/static", m="TMP1"))


def test_missing_chromium_fails_start_with_one_line(state_dir):
    result = run_cli("start", "--chromium", "/nonexistent/chromium", state_dir=state_dir)
    assert result.returncode == 69
    assert "chromium not found" in _one_line_error(result)
    assert not os.path.exists(os.path.join(state_dir, "browserd.pid"))


def test_missing_chromedriver_fails_start_with_one_line(state_dir):
    result = run_cli("start", "--chromedriver", "no-such-chromedriver", state_dir=state_dir)
    assert result.returncode == 69
    assert "chromedriver not found" in _one_line_error(result)


def test_webdriver_manager_without_network_is_one_clear_line(state_dir):
    result = run_cli("start", "--driver-source", "webdriver-manager", state_dir=state_dir,
                     env={"WDM_LOG": "0", "HOME": state_dir})
    assert result.returncode == 69
    line = _one_line_error(result)
    assert "webdriver-manager" in line


def test_bad_config_values_exit_78(state_dir, tmp_path):
    result = run_cli("start", "--browsers", "0", state_dir=state_dir)
    assert result.returncode == 78 and "browsers" in _one_line_error(result)
    bad = tmp_path / "bad.toml"
    bad.write_text("browsers = 'many'\n")
    result = run_cli("start", "--config", str(bad), state_dir=state_dir)
    assert result.returncode == 78 and "bad.toml" in _one_line_error(result)
    result = run_cli("start", env={"BROWSERD_QUEUE_WAIT": "soon"}, state_dir=state_dir)
    assert result.returncode == 78 and "BROWSERD_QUEUE_WAIT" in _one_line_error(result)


def test_second_start_says_already_running(start_daemon):
    daemon = start_daemon(1)
    result = run_cli("start", "--browsers", "1", state_dir=daemon.state_dir)
    assert result.returncode == 4
    assert f"already running (pid {daemon.pid}" in _one_line_error(result)
    assert daemon.client().ping()["pong"]


def test_fixed_port_in_use_fails_start_with_one_line(state_dir):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        result = run_cli("start", "--port", str(port), state_dir=state_dir)
        assert result.returncode == 1
        assert f"port {port} on 127.0.0.1 is already in use" in _one_line_error(result)
        assert not ours(state_dir)
    finally:
        busy.close()


def test_after_kill_9_the_browsers_end_with_the_daemon_and_next_start_is_clean(start_daemon, pages):
    """Each browser's namespace launcher holds the other end of a socket only the daemon
    has: when the daemon dies, even by SIGKILL, the launcher ends its browser's group."""
    first = start_daemon(2)
    old = [p.pid for p in first.processes()]
    os.kill(first.pid, signal.SIGKILL)
    assert wait_gone([first.pid], 30) == {}
    left = wait_gone(old, 30)
    assert not left, f"the dead daemon's browsers outlived it: {left}"
    second = start_daemon(2, state_dir=first.state_dir)
    assert second.pid != first.pid
    with second.client() as c:
        assert "AFTER-KILL" in c.page_source(pages.url("/static", m="AFTER-KILL"))
    assert "cleaned up after a dead daemon" in second.log


def test_after_kill_9_before_state_was_written_start_still_finds_every_browser(start_daemon):
    """A daemon that died before writing its records (browsers.json) leaves none: the next
    start finds the browsers by their private directories (chromedriver's --log-path too)."""
    first = start_daemon(2)
    old = [p.pid for p in first.processes()]
    drivers = [b["driver_pid"] for b in browser_records(first.state_dir)]
    os.kill(first.pid, signal.SIGKILL)
    assert wait_gone([first.pid], 30) == {}
    os.unlink(os.path.join(first.state_dir, "state.json"))
    os.unlink(os.path.join(first.state_dir, "browsers.json"))
    start_daemon(1, state_dir=first.state_dir)
    left = wait_gone(old, 30)
    assert not left, f"left behind (pid: state): {left}; chromedrivers were {drivers}"


def test_stop_with_stale_pidfile_cleans_up(start_daemon):
    daemon = start_daemon(1)
    pids = [p.pid for p in daemon.processes()]
    os.kill(daemon.pid, signal.SIGKILL)
    assert wait_gone([daemon.pid], 30) == {}
    result = daemon.stop()
    assert result.returncode == 0 and "stale pidfile" in result.stdout
    assert_nothing_left(daemon.state_dir, pids)


def test_unix_socket_address_and_stale_socket_file(start_daemon, state_dir, pages):
    path = os.path.join(state_dir, "browserd.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)  # a socket file left behind by a killed daemon
    stale.close()
    daemon = start_daemon(1, "--socket", path, state_dir=state_dir)
    assert daemon.address == {"family": "AF_UNIX", "path": path}
    with daemon.client() as c:
        assert "UNIX-OK" in c.page_source(pages.url("/static", m="UNIX-OK"))
    assert "unix(pid=" in daemon.log
    daemon.stop()
    assert not os.path.exists(path)


def test_stop_drains_running_jobs_and_refuses_new_ones(start_daemon, pages):
    daemon = start_daemon(2)
    results = {}

    def slow_fetch(i):
        with daemon.client() as c:
            try:
                results[i] = c.fetch(pages.url("/js", m=f"DRAIN{i}", delay=1500), wait_for="#built").source
            except Exception as exc:  # noqa: BLE001 - recorded for the assert
                results[i] = exc

    threads = [threading.Thread(target=slow_fetch, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while daemon.status()["browsers"]["active_jobs"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stopper = subprocess.Popen(BROWSERD + ["stop", "--state-dir", daemon.state_dir],
                               stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    refused = None
    while refused is None and time.monotonic() < deadline:
        try:
            with Client(state_dir=daemon.state_dir, retry=None) as c:
                c._call("ping", {})
                if c.ping()["draining"]:
                    from browserd_client import Backoff
                    c.retry = Backoff(attempts=1)
                    try:
                        c.fetch(pages.url("/static"))
                    except ShuttingDown as exc:
                        refused = exc
        except Exception:  # noqa: BLE001 - daemon may be gone already
            break
    out, _ = stopper.communicate(timeout=60)
    for t in threads:
        t.join(60)
    assert stopper.returncode == 0, out
    assert all(isinstance(results[i], str) and f"DRAIN{i}" in results[i] for i in range(2)), results
    assert isinstance(refused, ShuttingDown)


def test_run_in_foreground_notifies_systemd_and_stops_on_sigterm(state_dir, pages, tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(60)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    env.pop("BROWSERD_STATE_DIR", None)
    proc = subprocess.Popen(BROWSERD + ["run", "--browsers", "1", "--state-dir", state_dir],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        message = notify.recv(4096).decode()
        assert "READY=1" in message and f"MAINPID={proc.pid}" in message
        with Client(state_dir=state_dir) as c:
            assert "RUN-OK" in c.page_source(pages.url("/static", m="RUN-OK"))
        pids = [p.pid for p in ours(state_dir)]
        children = [c.pid for c in psutil.Process(proc.pid).children()]
        assert children, "in the foreground the browsers are the server's own children"
        proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096).decode().startswith("STOPPING=1")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "serving on" in err and "stopped in" in err
        assert_nothing_left(state_dir, pids + children)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()


def test_sigint_in_run_drains_like_sigterm(state_dir):
    env = dict(os.environ)
    env.pop("BROWSERD_STATE_DIR", None)
    proc = subprocess.Popen(BROWSERD + ["run", "--browsers", "1", "--state-dir", state_dir],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Client(state_dir=state_dir) as c:
            from browserd_client.client import wait_until_ready
            wait_until_ready(c, 60)
        pids = [p.pid for p in ours(state_dir)]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "SIGINT: draining" in err
        assert_nothing_left(state_dir, pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
