"""The systemd unit: its own ExecStart/ExecStop lines, run the way systemd runs them."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys

import psutil
import pytest

from browserd_client import Client
from tests.conftest import LOOPBACK_PAGES, ROOT, assert_nothing_left
from tests.support.procs import ours

UNIT = os.path.join(ROOT, "systemd", "browserd.service")
NOTIFY_DROP_IN = os.path.join(ROOT, "systemd", "browserd-notify.conf")
SYSUSERS = os.path.join(ROOT, "systemd", "browserd.sysusers")
MAX_EXPOSURE = 4.0  # systemd-analyze security: "OK" and better


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
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           "BROWSERD_ALLOW_NETWORKS": LOOPBACK_PAGES}
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
    main_pid = int(open(pidfile).readline())  # systemd reads the first line only
    assert psutil.pid_exists(main_pid)
    with Client(state_dir=state_dir) as c:
        assert "UNIT-OK" in c.page_source(pages.url("/static", m="UNIT-OK"))
        assert c.status()["pid"] == main_pid
    pids = [p.pid for p in ours(state_dir)]
    stopped = _run_like_systemd(_as_test_command(service["ExecStop"], state_dir), timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not psutil.pid_exists(main_pid) or psutil.Process(main_pid).status() == psutil.STATUS_ZOMBIE
    assert_nothing_left(state_dir, pids)


def _installed_copy(tmp_path, notify: bool) -> str:
    """The unit (and, for the notify variant, its drop-in) as installed, with ExecStart
    pointing at a real executable: verify wants the binary to exist."""
    def fix(path):
        return open(path).read().replace("/usr/local/bin/browserd", shutil.which("true"))

    unit = tmp_path / "browserd.service"
    unit.write_text(fix(UNIT))
    if notify:
        (tmp_path / "browserd.service.d").mkdir()
        (tmp_path / "browserd.service.d" / "notify.conf").write_text(fix(NOTIFY_DROP_IN))
    return str(unit)


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (Debian package systemd)")


@needs_analyze
@pytest.mark.parametrize("notify", [False, True], ids=["forking", "notify"])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path, notify):
    unit = _installed_copy(tmp_path, notify)
    result = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "browserd.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


@needs_analyze
@pytest.mark.parametrize("notify", [False, True], ids=["forking", "notify"])
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path, notify):
    unit = _installed_copy(tmp_path, notify)
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = re.search(r"Overall exposure level for browserd\.service: (\d+\.\d+) (\w+)", result.stdout)
    assert found, result.stdout + result.stderr
    exposure, verdict = float(found.group(1)), found.group(2)
    print(f"systemd-analyze security ({'notify' if notify else 'forking'}): exposure {exposure} {verdict}")
    open_items = [line for line in result.stdout.splitlines() if line.startswith("\u2717")]
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} {verdict}; open:\n" + "\n".join(open_items)


def test_unit_runs_as_its_own_user_and_leaves_the_browsers_their_namespaces():
    service = _unit()["Service"]
    sysusers = [line.split() for line in open(SYSUSERS) if line.strip() and not line.startswith("#")]
    assert ["u", service["User"]] == sysusers[0][:2] and service["User"] not in ("root", "0")
    assert service["Group"] == service["User"]  # sysusers' "u" creates the group of the same name
    environment = dict(shlex.split(line)[0].split("=", 1) for line in _environment_lines())
    home = environment["HOME"]
    assert home == "/var/cache/" + service["CacheDirectory"], "HOME must be a directory the unit may write"
    assert home in open(SYSUSERS).read()
    # Chromium's sandbox needs user, pid and net namespaces; the browsers' network too.
    assert set(service["RestrictNamespaces"].split()) >= {"user", "pid", "net"}
    assert "PrivateUsers" not in service and "PrivateNetwork" not in service
    assert service["NoNewPrivileges"] == "yes" and service["CapabilityBoundingSet"] == ""
    assert "MemoryDenyWriteExecute" not in service  # V8's JIT


def _environment_lines() -> list[str]:
    return [line.split("=", 1)[1] for line in open(UNIT).read().splitlines() if line.startswith("Environment=")]


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_sysusers_file_creates_the_user_and_its_group(tmp_path):
    (tmp_path / "etc").mkdir()
    result = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", SYSUSERS], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    user = [line.split(":") for line in (tmp_path / "etc" / "passwd").read_text().splitlines()]
    group = [line.split(":") for line in (tmp_path / "etc" / "group").read_text().splitlines()]
    (name, _, uid, gid, _, home, shell), = user
    assert name == "browserd" and home == "/var/cache/browserd" and shell.endswith("nologin")
    assert [(g[0], g[2]) for g in group] == [("browserd", gid)] and int(uid) != 0
