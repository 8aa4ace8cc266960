"""The systemd unit: its own ExecStart/ExecStop lines, run the way systemd runs them."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys

import psutil
import pytest

from browserd_client import Client
from tests.conftest import ROOT, assert_nothing_left
from tests.support.procs import ours

UNIT = os.path.join(ROOT, "systemd", "browserd.service")


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str
    parser.read(UNIT)
    return parser


def _as_test_command(line: str, state_dir: str) -> list[str]:
    argv = shlex.split(line.replace("/run/browserd", state_dir))
    assert argv[0].endswith("/browserd")
    return [sys.executable, "-m", "browserd"] + argv[1:]


def _run_like_systemd(argv, timeout):
    """stdin from /dev/null, a new session, a minimal environment, as systemd does."""
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          start_new_session=True, env=env, cwd="/")


def test_unit_is_forking_with_pidfile_in_its_runtime_directory():
    service = _unit()["Service"]
    assert service["Type"] == "forking"
    assert service["PIDFile"] == "/run/browserd/browserd.pid"
    assert service["RuntimeDirectory"] == "browserd"
    assert "start" in shlex.split(service["ExecStart"]) and "stop" in shlex.split(service["ExecStop"])


def test_exec_start_and_exec_stop_as_systemd_runs_them(tmp_path, pages):
    service = _unit()["Service"]
    state_dir = str(tmp_path / "run-browserd")
    os.makedirs(state_dir)  # RuntimeDirectory= creates it before ExecStart
    started = _run_like_systemd(_as_test_command(service["ExecStart"], state_dir), timeout=120)
    assert started.returncode == 0, started.stderr
    # Type=forking: once ExecStart has exited, systemd reads PIDFile; that pid must serve.
    pidfile = service["PIDFile"].replace("/run/browserd", state_dir)
    main_pid = int(open(pidfile).read())
    assert psutil.pid_exists(main_pid)
    with Client(state_dir=state_dir) as c:
        assert "UNIT-OK" in c.page_source(pages.url("/static", m="UNIT-OK"))
        assert c.status()["pid"] == main_pid
    pids = [p.pid for p in ours(state_dir)]
    stopped = _run_like_systemd(_as_test_command(service["ExecStop"], state_dir), timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not psutil.pid_exists(main_pid) or psutil.Process(main_pid).status() == psutil.STATUS_ZOMBIE
    assert_nothing_left(state_dir, pids)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    # verify wants the ExecStart binary to exist: point it at a real executable.
    text = open(UNIT).read().replace("/usr/local/bin/browserd", shutil.which("true"))
    unit = tmp_path / "browserd.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "browserd.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
