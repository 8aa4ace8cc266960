"""Fixtures: a local page server, and real daemons started through the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile

import pytest

from browserd.pages import PageServer
from browserd_client import Backoff, Client
from browserd_client.state import read_state
from tests.support.procs import ours, wait_gone, zombie_children

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The egress policy refuses loopback by default (no SSRF). The tests' pages are served on
#: 127.0.0.1, so every daemon a test starts opens exactly that address, and nothing else
#: (127.0.0.2 stays refused: the egress tests' forbidden side).
LOOPBACK_PAGES = "127.0.0.1/32"
os.environ.setdefault("BROWSERD_ALLOW_NETWORKS", LOOPBACK_PAGES)
BROWSERD = [sys.executable, "-m", "browserd"]


def run_cli(*args, state_dir: str | None = None, timeout: float = 180, env=None) -> subprocess.CompletedProcess:
    cmd = list(BROWSERD) + list(args)
    if state_dir is not None:
        cmd += ["--state-dir", state_dir]
    full_env = dict(os.environ)
    full_env.pop("BROWSERD_STATE_DIR", None)
    full_env.pop("NOTIFY_SOCKET", None)
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                          stdin=subprocess.DEVNULL)


class Daemon:
    def __init__(self, state_dir: str, start_output: str):
        self.state_dir = state_dir
        self.start_output = start_output
        state = read_state(state_dir)
        self.pid = state["pid"]
        self.address = state["address"]

    @property
    def log(self) -> str:
        with open(os.path.join(self.state_dir, "browserd.log"), encoding="utf-8") as f:
            return f.read()

    def client(self, **kwargs) -> Client:
        kwargs.setdefault("retry", Backoff(attempts=10, deadline=30))
        return Client(state_dir=self.state_dir, **kwargs)

    def status(self) -> dict:
        with self.client() as c:
            return c.status()

    def processes(self):
        return ours(self.state_dir)

    def stop(self) -> subprocess.CompletedProcess:
        return run_cli("stop", state_dir=self.state_dir)


def assert_nothing_left(state_dir: str, pids, daemon_pid: int | None = None) -> None:
    """Every recorded process is gone and reaped within a bounded wait (init reaps the
    re-parented ones lazily on these machines), and none remains a zombie."""
    left = wait_gone(pids, timeout=30)
    assert not left, f"processes left after stop (pid: state): {left}"
    assert not ours(state_dir), f"unrecorded processes of {state_dir} remain: {ours(state_dir)}"
    if daemon_pid:
        assert not zombie_children(daemon_pid)


@pytest.fixture(scope="session")
def pages():
    with PageServer() as server:
        yield server


@pytest.fixture
def state_dir():
    with tempfile.TemporaryDirectory(prefix="browserd-test-") as d:
        yield d


@contextlib.contextmanager
def running_daemon(state_dir: str, browsers: int = 2, *flags: str, env=None):
    """``with running_daemon(dir) as d:`` a daemon of ``browsers`` started with ``flags``;
    stopped on the way out, and it must leave no process behind."""
    result = run_cli("start", "--browsers", str(browsers), *flags, state_dir=state_dir, env=env)
    assert result.returncode == 0, f"start failed ({result.returncode}): {result.stderr}{result.stdout}"
    daemon = Daemon(state_dir, result.stdout)
    try:
        yield daemon
    finally:
        pids = [p.pid for p in daemon.processes()]
        result = daemon.stop()
        assert result.returncode == 0, result.stderr
        assert_nothing_left(state_dir, pids)


@pytest.fixture
def start_daemon():
    """Factory: ``start_daemon(browsers=2, *flags) -> Daemon``; every daemon is stopped at
    the end and must leave no process behind."""
    started: list[tuple[Daemon, tempfile.TemporaryDirectory]] = []

    def start(browsers: int = 2, *flags: str, state_dir: str | None = None, env=None) -> Daemon:
        tmp = None
        if state_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="browserd-test-")
            state_dir = tmp.name
        result = run_cli("start", "--browsers", str(browsers), *flags, state_dir=state_dir, env=env)
        assert result.returncode == 0, f"start failed ({result.returncode}): {result.stderr}{result.stdout}"
        daemon = Daemon(state_dir, result.stdout)
        started.append((daemon, tmp))
        return daemon

    yield start
    for daemon, tmp in started:
        pids = [p.pid for p in daemon.processes()]
        result = daemon.stop()
        assert result.returncode == 0, result.stderr
        assert_nothing_left(daemon.state_dir, pids)
        if tmp is not None:
            tmp.cleanup()


@pytest.fixture(scope="module")
def shared_daemon(pages):
    """One daemon of 2 browsers for the tests of a module that only read from it."""
    with tempfile.TemporaryDirectory(prefix="browserd-shared-") as tmp, running_daemon(tmp) as daemon:
        yield daemon


def run_workers(daemon: Daemon, pages: PageServer, processes: int, each: int, path: str = "/static",
                timeout: float = 300, env=None) -> list[dict]:
    """Start ``processes`` client processes at once, each fetching ``each`` pages; return
    every record they print."""
    worker = os.path.join(ROOT, "tests", "support", "client_worker.py")
    prefix = pages.url(path) + ("&m=" if "?" in path else "?m=")
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    procs = [subprocess.Popen([sys.executable, worker, daemon.state_dir, str(each), prefix, str(n)],
                              stdout=subprocess.PIPE, text=True, env=full_env) for n in range(processes)]
    records = []
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"worker exited {proc.returncode}"
        records.extend(json.loads(line) for line in out.splitlines() if line.strip())
    return records
