"""The pidfile: held with ``flock``, and the proof that a pid read from it is our daemon.

The kernel drops the lock when the holder dies, so a live daemon and a stale file are told
apart exactly (no guessing from pids). A pid read from the file is never signalled
before :func:`daemon_identity` has proved it is our daemon (STYLE trap 14).
"""

from __future__ import annotations

import fcntl
import os

import psutil

from . import statedir
from .errors import AlreadyRunning


class PidFile:
    """A pidfile held with ``flock``: the kernel drops the lock when the holder dies, so
    a live daemon and a stale file are told apart exactly (no guessing from pids).

    Its first line is the pid (what systemd's ``PIDFile=`` reads); the second the
    daemon's create time and executable, so :func:`daemon_identity` can prove that a pid
    is our daemon before anyone signals it. Opened without following symlinks, 0600."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None
        self.stale_pid: int | None = None

    def acquire(self) -> "PidFile":
        """Open (``O_NOFOLLOW``, 0600) and lock the pidfile; remember the pid a dead daemon
        left in it as ``stale_pid``. Raises :class:`AlreadyRunning` while a live daemon
        holds it, :class:`OSError` when the path cannot be a pidfile."""
        fd = statedir.open_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(read_pid(self.path), self.path) from None
        self.fd = fd
        self.stale_pid = parse_pid_record(os.pread(fd, 4096, 0))[0]
        return self

    def write(self, pid: int) -> None:
        """Record ``pid`` (first line) and its create time and executable (second line)."""
        proc = psutil.Process(pid)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n{proc.create_time()!r} {proc.exe()}\n".encode(), 0)
        os.fsync(self.fd)

    def release(self) -> None:
        """Remove the pidfile and drop the lock (a no-op when not held)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    # DaemonContext's pidfile protocol: entered in the daemon process after detaching.
    def __enter__(self):
        self.write(os.getpid())
        return self

    def __exit__(self, *exc):
        return False


def _parse_pid(data: bytes) -> int | None:
    try:
        pid = int(data.decode().strip() or "0")
        return pid if pid > 0 else None
    except ValueError:
        return None


def read_pid(path: str) -> int | None:
    """The pid recorded in the pidfile ``path``, or None."""
    return read_pid_record(path)[0]


def parse_pid_record(data: bytes) -> tuple[int | None, float | None, str]:
    """(pid, create time, executable) of a pidfile's content; missing parts are None/""."""
    lines = data.decode(errors="replace").splitlines()
    pid = _parse_pid(lines[0].encode()) if lines else None
    create_time, exe = None, ""
    if len(lines) > 1:
        first, _, exe = lines[1].partition(" ")
        try:
            create_time = float(first)
        except ValueError:
            create_time = None
    return pid, create_time, exe


def read_pid_record(path: str) -> tuple[int | None, float | None, str]:
    """The pidfile's record, read without following a symlink (``(None, None, "")`` when
    missing)."""
    try:
        fd = statedir.open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None, None, ""
    try:
        return parse_pid_record(os.pread(fd, 4096, 0))
    finally:
        os.close(fd)


def _holds_open(proc: psutil.Process, target: os.stat_result) -> bool:
    fd_dir = f"/proc/{proc.pid}/fd"
    for name in os.listdir(fd_dir):
        try:
            st = os.stat(os.path.join(fd_dir, name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


def daemon_identity(path: str) -> tuple[psutil.Process | None, str]:
    """Prove that the pid in the pidfile ``path`` is our daemon before it is signalled:
    the process runs as us, its create time and executable are the ones it recorded, and
    it holds this very pidfile (same inode) open. Returns ``(process, "")``, or ``(None,
    reason)``: a pid read from a file alone is never signalled."""
    pid, create_time, exe = read_pid_record(path)
    if not pid:
        return None, f"{path} holds no pid"
    if create_time is None:
        return None, f"{path} names pid {pid} without its create time"
    try:
        target = os.stat(path, follow_symlinks=False)
        proc = psutil.Process(pid)
        if proc.uids().effective != os.geteuid():
            return None, f"pid {pid} runs as uid {proc.uids().effective}, not as us"
        if abs(proc.create_time() - create_time) > 0.05:
            return None, f"pid {pid} is not the process that wrote {path} (create time differs)"
        if exe and proc.exe() != exe:
            return None, f"pid {pid} runs {proc.exe()}, not {exe}"
        if not _holds_open(proc, target):
            return None, f"pid {pid} does not hold {path} open"
    except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
        return None, f"pid {pid} is gone"
    except (psutil.AccessDenied, PermissionError):
        return None, f"pid {pid} cannot be inspected (not ours)"
    return proc, ""


def is_locked(path: str) -> bool:
    """True while a live daemon holds the pidfile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
