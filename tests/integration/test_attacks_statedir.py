"""The state directory as an attacker sees it (STYLE trap 14): planted dirs, symlinks,
keys, pidfiles and browser records, and a careless umask. Each test acts as the attacker
would (another user is ``nobody``, via ``setpriv``) and asserts what the operator sees:
a one-line refusal (exit 78) with nothing written, deleted or signalled."""

from __future__ import annotations

import fcntl
import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import BROWSERD, run_cli
from tests.support.procs import browser_records

pytestmark = pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) is needed to act "
                                "as another user")

NOBODY = 65534
EXIT_STATE_DIR = 78
EXIT_NO_PERMISSION = 77
STATE_FILES = ("authkey", "state.json", "browsers.json", "browserd.pid", "browserd.log")


def as_nobody(*cmd: str, groups: tuple = ()) -> subprocess.CompletedProcess:
    """Run ``cmd`` as the unprivileged user 65534 (in ``groups`` only)."""
    who = ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY)]
    who += ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    env = {k: v for k, v in os.environ.items() if k not in ("BROWSERD_STATE_DIR", "NOTIFY_SOCKET")}
    return subprocess.run(who + list(cmd), capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("browserd: "), f"expected one line: {result.stderr!r}"
    return lines[0]


def snapshot(path: str) -> dict:
    """Every entry under ``path`` (not following symlinks) with its content or target."""
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[full] = ("link", os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    found[full] = ("file", f.read(), stat.S_IMODE(st.st_mode), st.st_uid)
            else:
                found[full] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid)
    return found


@pytest.fixture
def public_dir():
    """A root-owned, world-writable sticky directory of this test, like /tmp."""
    path = tempfile.mkdtemp(prefix="browserd-attack-")
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stop_afterwards():
    """State dirs to stop at the end, in case a daemon started there (the code under
    attack may have followed the attacker)."""
    dirs: list[str] = []
    yield dirs.append
    for path in dirs:
        run_cli("stop", "--timeout", "5", state_dir=path)


@pytest.fixture
def victim():
    """An unrelated live process (a ``sleep 60`` of another program), with its own dir."""
    workdir = tempfile.mkdtemp(prefix="victim-")
    proc = subprocess.Popen(["sleep", "60"], cwd=workdir, env={"XDG_CONFIG_HOME": workdir, "PATH": "/usr/bin:/bin"},
                            start_new_session=True)  # its own group: a sweep gone wrong hits only it
    yield proc, workdir
    proc.kill()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


def test_state_dir_that_is_a_symlink_is_refused_and_its_target_untouched(state_dir, stop_afterwards):
    target = os.path.join(state_dir, "someone-elses-app")
    os.makedirs(os.path.join(target, "browsers"))
    with open(os.path.join(target, "browsers", "precious.txt"), "w") as f:
        f.write("keep me")
    link = os.path.join(state_dir, "browserd")
    os.symlink(target, link)
    stop_afterwards(target)
    before = snapshot(target)
    for command in ("start", "stop"):
        result = run_cli(command, state_dir=link, timeout=120)
        print(command, result.returncode, result.stderr.strip())
        assert result.returncode == EXIT_STATE_DIR
        assert "symlink" in one_line(result)
        assert snapshot(target) == before


def test_state_dir_owned_by_another_user_with_a_planted_key_is_refused(public_dir, stop_afterwards):
    state = os.path.join(public_dir, "browserd")
    planted = as_nobody("/bin/sh", "-c", f"mkdir -m 755 {state} && echo attacker-key > {state}/authkey")
    assert planted.returncode == 0, planted.stderr
    stop_afterwards(state)
    before = snapshot(state)
    for command in ("start", "stop"):
        result = run_cli(command, state_dir=state, timeout=120)
        print(command, result.returncode, result.stderr.strip())
        assert result.returncode == EXIT_STATE_DIR
        assert f"owned by uid {NOBODY}" in one_line(result)
        assert snapshot(state) == before  # the key was not used, nothing was written


@pytest.mark.parametrize("mode", [0o770, 0o757])
def test_group_or_world_writable_state_dir_is_refused(state_dir, stop_afterwards, mode):
    state = os.path.join(state_dir, "browserd")
    os.mkdir(state)
    os.chmod(state, mode)
    stop_afterwards(state)
    result = run_cli("start", state_dir=state, timeout=120)
    print(result.returncode, result.stderr.strip())
    assert result.returncode == EXIT_STATE_DIR
    assert "writable" in one_line(result)
    assert os.listdir(state) == []


@pytest.mark.parametrize("planted", ["key owned by another user", "log symlinked to a victim file"])
def test_planted_file_in_our_state_dir_is_refused(state_dir, public_dir, stop_afterwards, planted):
    state = os.path.join(state_dir, "browserd")
    os.mkdir(state, 0o700)
    victim_file = os.path.join(public_dir, "victim.txt")
    with open(victim_file, "w") as f:
        f.write("untouched")
    if planted.startswith("key"):
        with open(os.path.join(state, "authkey"), "w") as f:
            f.write("attacker-key\n")
        os.chown(os.path.join(state, "authkey"), NOBODY, NOBODY)
    else:
        os.symlink(victim_file, os.path.join(state, "browserd.log"))
    stop_afterwards(state)
    before = snapshot(state)
    result = run_cli("start", state_dir=state, timeout=120)
    print(planted, result.returncode, result.stderr.strip())
    assert result.returncode == EXIT_STATE_DIR
    one_line(result)
    assert snapshot(state) == before
    with open(victim_file) as f:
        assert f.read() == "untouched"


def test_planted_pidfile_naming_a_live_process_is_never_signalled(state_dir, victim, stop_afterwards):
    """Someone holds the pidfile's lock (as a live daemon would) and names another
    program's pid in it: ``stop`` must prove the pid is our daemon before signalling."""
    proc, _ = victim
    state = os.path.join(state_dir, "browserd")
    os.mkdir(state, 0o700)
    pidfile = os.path.join(state, "browserd.pid")
    fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{proc.pid}\n".encode())
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = run_cli("stop", "--timeout", "2", state_dir=state, timeout=120)
        print("stop", result.returncode, result.stderr.strip())
        assert proc.poll() is None, f"stop signalled an unrelated process: exit {proc.returncode}"
        assert result.returncode == 1 and "nothing was signalled" in one_line(result)
    finally:
        os.close(fd)
    # the lock is gone now: a stale pidfile; start ends what the dead daemon left, not this pid
    stop_afterwards(state)
    result = run_cli("start", "--browsers", "1", state_dir=state, timeout=120)
    assert result.returncode == 0, result.stderr
    assert proc.poll() is None, "start signalled the pid of a stale pidfile"
    assert run_cli("stop", state_dir=state).returncode == 0
    assert proc.poll() is None


def test_planted_browser_record_never_kills_a_foreign_process(state_dir, victim, stop_afterwards):
    """A record (in either state file) naming another program's working dir and group
    must not steer the stale-daemon sweep of ``stop`` or ``start``."""
    proc, workdir = victim
    state = os.path.join(state_dir, "browserd")
    os.mkdir(state, 0o700)
    record = {"id": "b1", "driver_pid": proc.pid, "pgid": os.getpgid(proc.pid), "chromium_pid": proc.pid,
              "workdir": workdir, "create_time": 0, "port": 1, "grid_url": None, "session_id": None}
    for name in ("state.json", "browsers.json"):
        with open(os.path.join(state, name), "w") as f:
            json.dump({"pid": 1, "browsers": [record]}, f)
    with open(os.path.join(state, "browserd.pid"), "w") as f:
        f.write("1\n")
    stop_afterwards(state)
    result = run_cli("stop", state_dir=state, timeout=120)
    print("stop", result.returncode, result.stdout.strip(), result.stderr.strip())
    assert proc.poll() is None, "stop's stale sweep killed a foreign process"
    for name in ("state.json", "browsers.json"):
        with open(os.path.join(state, name), "w") as f:
            json.dump({"pid": 1, "browsers": [record]}, f)
    result = run_cli("start", "--browsers", "1", state_dir=state, timeout=120)
    assert result.returncode == 0, result.stderr
    assert proc.poll() is None, "start's stale sweep killed a foreign process"
    assert run_cli("stop", state_dir=state).returncode == 0
    assert proc.poll() is None


def test_umask_000_still_gives_private_dir_files_log_and_socket(state_dir, public_dir, stop_afterwards):
    state = os.path.join(state_dir, "browserd")  # created by start
    sock = os.path.join(public_dir, "browserd.sock")  # in a dir anyone may enter
    stop_afterwards(state)
    env = {k: v for k, v in os.environ.items() if k not in ("BROWSERD_STATE_DIR", "NOTIFY_SOCKET")}
    result = subprocess.run(["/bin/sh", "-c", 'umask 000; exec "$@"', "sh", *BROWSERD, "start", "--browsers", "1",
                             "--socket", sock, "--state-dir", state], capture_output=True, text=True,
                            timeout=180, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    modes = {name: stat.S_IMODE(os.lstat(os.path.join(state, name)).st_mode) for name in os.listdir(state)}
    modes["."] = stat.S_IMODE(os.lstat(state).st_mode)
    modes["socket"] = stat.S_IMODE(os.lstat(sock).st_mode)
    print(modes)
    assert modes["."] == 0o700 and modes["browsers"] == 0o700
    for name in STATE_FILES:
        assert modes[name] == 0o600, (name, oct(modes[name]))
    assert modes["socket"] & 0o077 == 0
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print('refused', e.errno)\n"
             "else:\n    print('connected')\n")
    connect = as_nobody(sys.executable, "-c", probe, sock)
    print("nobody:", connect.stdout.strip(), connect.stderr.strip())
    assert connect.stdout.startswith("refused")


def test_state_json_holds_no_port_session_or_debugger_and_is_0600(start_daemon):
    daemon = start_daemon(1)
    path = os.path.join(daemon.state_dir, "state.json")
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    state = json.loads(raw)
    print(sorted(state))
    assert set(state) <= {"pid", "version", "protocol", "address", "started_at"}
    for secret in ("session", "debugger", "browsers", "driver", "workdir"):
        assert secret not in raw
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    records = browser_records(daemon.state_dir)  # the sweep's records: daemon's user only
    assert records and all(f'"port": {r["port"]}' not in raw for r in records)
    assert stat.S_IMODE(os.stat(os.path.join(daemon.state_dir, "browsers.json")).st_mode) == 0o600


def test_group_setting_shares_key_and_state_with_its_members_only(stop_afterwards):
    try:
        group = grp.getgrnam("users")
    except KeyError:
        pytest.skip("no group 'users' on this machine")
    parent = tempfile.mkdtemp(prefix="browserd-group-")
    os.chmod(parent, 0o755)
    state = os.path.join(parent, "browserd")
    stop_afterwards(state)
    try:
        result = run_cli("start", "--browsers", "1", "--group", "users", state_dir=state, timeout=180)
        assert result.returncode == 0, result.stderr
        def mode_gid(name):
            st = os.lstat(os.path.join(state, name))
            return oct(stat.S_IMODE(st.st_mode)), st.st_gid
        shared = {name: mode_gid(name) for name in (".", "authkey", "state.json", "browserd.log")}
        private = {name: mode_gid(name)[0] for name in ("browsers.json", "browserd.pid")}
        print(shared, private)
        assert shared["."] == (oct(0o750), group.gr_gid)
        assert all(shared[name] == (oct(0o640), group.gr_gid) for name in ("authkey", "state.json", "browserd.log"))
        assert private == {"browsers.json": oct(0o600), "browserd.pid": oct(0o600)}
        cli = [*BROWSERD, "status", "--state-dir", state]
        member = as_nobody(*cli, groups=(group.gr_gid,))
        print("member:", member.returncode, member.stdout.strip()[:80], member.stderr.strip())
        assert member.returncode == 0 and "browsers: 1/1" in member.stdout
        outsider = as_nobody(*cli)
        print("outsider:", outsider.returncode, outsider.stderr.strip())
        assert outsider.returncode == EXIT_NO_PERMISSION
        assert "cannot read the key (not in group users)" in one_line(outsider)
        fetch = as_nobody(*BROWSERD, "fetch", "http://127.0.0.1:9/", "--state-dir", state)
        assert fetch.returncode == EXIT_NO_PERMISSION and "not in group users" in one_line(fetch)
    finally:
        run_cli("stop", state_dir=state)
        shutil.rmtree(parent, ignore_errors=True)
