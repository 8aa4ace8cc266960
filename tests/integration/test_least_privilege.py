"""Least privilege: Chromium keeps its sandbox unless the daemon runs as root, and says so.

The unprivileged test runs the unit's own ExecStart/ExecStop lines as uid 65534 (nobody),
the way systemd runs them as ``User=``; the renderers must then be confined by seccomp-bpf
and live in user and PID namespaces of their own, and no process may have --no-sandbox.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from browserd_client import Client
from tests.conftest import LOOPBACK_PAGES, ROOT, assert_nothing_left, run_cli
from tests.integration.test_systemd import _as_test_command, _unit
from tests.support.procs import ours

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _env(home: str) -> dict:
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": home,
            "BROWSERD_ALLOW_NETWORKS": LOOPBACK_PAGES,
            "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "clients", "python")])}


def _cannot_run_as_nobody() -> str | None:
    if os.geteuid() != 0:
        return "needs root to switch to uid 65534"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    probe = subprocess.run(AS_NOBODY + [sys.executable, "-c", "import browserd.cli, selenium, browserd_client"],
                           capture_output=True, text=True, timeout=60, env=_env("/"), cwd="/")
    if probe.returncode != 0:
        return (f"uid {NOBODY} cannot run {sys.executable} with this checkout "
                f"(make the interpreter, the virtualenv and {ROOT} readable to others): "
                f"{(probe.stderr.strip().splitlines() or ['exit %d' % probe.returncode])[-1]}")
    return None


def _chromium_processes(state_dir: str) -> dict:
    """{'browser': [...], 'renderer': [...], 'all': [...]} of the Chromiums of ``state_dir``."""
    found = {"browser": [], "renderer": [], "all": []}
    for proc in ours(state_dir):
        cmdline = proc.cmdline()
        if not cmdline or os.path.basename(cmdline[0]) not in ("chromium", "chrome"):
            continue
        found["all"].append(proc)
        kind = next((a.split("=", 1)[1] for a in cmdline if a.startswith("--type=")), "browser")
        if kind in found:
            found[kind].append(proc)
    return found


def _proc_field(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(field + ":"))


@pytest.fixture
def nobody_dirs():
    """A state directory (0700) and a HOME (the unit's CacheDirectory), owned by nobody."""
    why = _cannot_run_as_nobody()
    if why:
        pytest.skip(why)
    with tempfile.TemporaryDirectory(prefix="browserd-nobody-") as top:
        os.chmod(top, 0o755)
        dirs = {}
        for name in ("run", "cache"):
            path = os.path.join(top, name)
            os.mkdir(path, 0o700)
            os.chown(path, NOBODY, NOBODY)
            dirs[name] = path
        yield dirs


def test_unit_exec_start_as_unprivileged_user_sandboxes_chromium(nobody_dirs, pages):
    service = _unit()["Service"]
    state_dir = nobody_dirs["run"]

    def run_as_nobody(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(AS_NOBODY + _as_test_command(line, state_dir), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120, start_new_session=True,
                              env=_env(nobody_dirs["cache"]), cwd="/")

    started = run_as_nobody(service["ExecStart"])
    assert started.returncode == 0, started.stderr
    try:
        # Root may read nobody's 0600 authkey: the client runs here.
        with Client(state_dir=state_dir) as client:
            assert "SANDBOXED" in client.page_source(pages.url("/static", m="SANDBOXED"))
            status = client.status()
        procs = _chromium_processes(state_dir)
        assert procs["browser"] and procs["renderer"], f"no Chromium found: {procs}"
        assert all(p.uids().effective == NOBODY for p in ours(state_dir))
        with_flag = [p.pid for p in procs["all"] if "--no-sandbox" in p.cmdline()]
        assert not with_flag, f"Chromium processes with --no-sandbox: {with_flag}"
        browser_ns = {os.readlink(f"/proc/{p.pid}/ns/{ns}") for p in procs["browser"] for ns in ("user", "pid")}
        for renderer in procs["renderer"]:
            seccomp = _proc_field(renderer.pid, "Seccomp")
            ns = {kind: os.readlink(f"/proc/{renderer.pid}/ns/{kind}") for kind in ("user", "pid")}
            print(f"\nrenderer {renderer.pid}: Seccomp {seccomp}, {ns['user']}, {ns['pid']} "
                  f"(browser: {sorted(browser_ns)})")
            assert seccomp == "2", f"renderer {renderer.pid} is not under a seccomp filter"
            assert not set(ns.values()) & browser_ns, "renderer shares the browser's user/pid namespace"
        plain = run_cli("status", state_dir=state_dir)
        print(f"status: user {status.get('user')}, sandbox {status.get('sandbox')}")
        assert status["user"].endswith(f"(uid {NOBODY})")
        assert status["sandbox"] == {"on": True, "reason": "unprivileged user namespaces"}
        assert "sandbox: on (unprivileged user namespaces)" in plain.stdout, plain.stdout
    finally:
        pids = [p.pid for p in ours(state_dir)]
        stopped = run_as_nobody(service["ExecStop"])
    assert stopped.returncode == 0, stopped.stderr
    assert_nothing_left(state_dir, pids)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the daemon as root")
def test_root_daemon_runs_chromium_without_sandbox_and_warns(start_daemon, pages):
    daemon = start_daemon(1)
    with daemon.client() as client:
        assert "ROOT" in client.page_source(pages.url("/static", m="ROOT"))
    status = daemon.status()
    plain = run_cli("status", state_dir=daemon.state_dir)
    print(f"\nstatus: user {status['user']}, sandbox {status['sandbox']}")
    assert status["user"] == "root (uid 0)"
    assert status["sandbox"]["on"] is False and "root" in status["sandbox"]["reason"]
    assert "user: root (uid 0); sandbox: off (running as root" in plain.stdout, plain.stdout
    assert "WARNING [" in daemon.log and "running as root: run browserd as an unprivileged user" in daemon.log
    assert "Chromium sandbox: off (running as root" in daemon.log
    procs = _chromium_processes(daemon.state_dir)
    assert procs["browser"] and all("--no-sandbox" in p.cmdline() for p in procs["browser"])
