"""Detaching from the terminal: pidfile, DaemonContext, and the readiness pipe.

``start`` must not return before the daemon serves, but ``DaemonContext.open()`` makes
its caller exit. So the CLI forks once itself: the parent waits on a pipe for one JSON
line from the daemon (ready, with pid and address; or the reason it failed), the child
enters the DaemonContext. The browsers were started before that fork, by the CLI
process; when it exits they are re-parented to init and never become our zombies.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import time

import daemon


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None, path: str):
        super().__init__(f"browserd is already running (pid {pid}, pidfile {path})")
        self.pid = pid


class PidFile:
    """A pidfile held with ``flock``: the kernel drops the lock when the holder dies, so
    a live daemon and a stale file are told apart exactly (no guessing from pids)."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None
        self.stale_pid: int | None = None

    def acquire(self) -> "PidFile":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(read_pid(self.path), self.path) from None
        self.fd = fd
        self.stale_pid = _parse_pid(os.pread(fd, 64, 0))
        return self

    def write(self, pid: int) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n".encode(), 0)
        os.fsync(self.fd)

    def release(self) -> None:
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
    try:
        with open(path, "rb") as f:
            return _parse_pid(f.read(64))
    except FileNotFoundError:
        return None


def is_locked(path: str) -> bool:
    """True while a live daemon holds the pidfile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class Readiness:
    """The daemon's end of the readiness pipe (a no-op in the foreground)."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def _send(self, message: dict) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (json.dumps(message) + "\n").encode())
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None

    def ready(self, **info) -> None:
        self._send({"ready": True, **info})

    def failed(self, reason: str) -> None:
        self._send({"ready": False, "error": reason})


def detach(preserve_fds: list, log_path: str, pidfile: PidFile, timeout: float):
    """Fork; in the parent wait for the daemon's readiness message and return it as a
    dict; in the daemon return a :class:`Readiness` to report with."""
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child:
        os.close(write_fd)
        try:
            return _wait_ready(read_fd, timeout)
        finally:
            os.close(read_fd)
            os.waitpid(child, 0)  # DaemonContext's first fork exits at once
    os.close(read_fd)
    try:
        log = open(log_path, "a", buffering=1, encoding="utf-8")
        context = daemon.DaemonContext(
            detach_process=True,          # never guess: under PID 1 the default hangs start
            working_directory="/",
            umask=0o022,
            pidfile=pidfile,
            files_preserve=[*preserve_fds, write_fd, log, pidfile.fd],
            stdout=log,
            stderr=log,
            prevent_core=True,
            signal_map={signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None},
        )
        context.open()
    except BaseException as exc:  # still in the forked child: report and vanish
        try:
            os.write(write_fd, (json.dumps({"ready": False, "error": f"daemonizing failed: {exc}"}) + "\n").encode())
        finally:
            os._exit(1)
    return Readiness(write_fd)


def _wait_ready(fd: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return {"ready": False, "error": f"daemon did not report ready within {timeout:.0f}s"}
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return {"ready": False, "error": "daemon exited during start-up"}
        data += chunk
    try:
        return json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return {"ready": False, "error": f"garbled readiness message {data[:200]!r}"}
