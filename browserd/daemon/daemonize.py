"""Detaching from the terminal: DaemonContext, and the readiness pipe.

``start`` must not return before the daemon serves, but ``DaemonContext.open()`` makes
its caller exit. So :func:`detach` forks once itself: the parent waits on a pipe for one
JSON line from the daemon (ready, with pid and address; or the reason it failed), the
child enters the DaemonContext. Both get a :class:`Readiness`: the daemon reports through
it, the parent reads the report from it. The browsers were started before that fork, by
the CLI process; when it exits they are re-parented to init and never become our zombies.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time

import daemon

from . import statedir
from .errors import ExitCode
from .pidfile import PidFile


class Readiness:
    """The readiness pipe, seen from one side of :func:`detach`'s fork.

    In the daemon (``in_daemon`` True) it reports once, with :meth:`ready` or
    :meth:`failed`; with ``fd`` None (``run``, in the foreground) both are no-ops. In the
    parent (``in_daemon`` False), ``report`` is what the daemon said: a dict with
    ``ready`` (bool), then ``pid``, ``address``, ``browsers``, ``state_dir``, ``log``,
    ``site_problems`` when ready, or ``error`` (one line) when not."""

    def __init__(self, fd: int | None, in_daemon: bool = True, report: dict | None = None):
        self.fd = fd
        self.in_daemon = in_daemon
        self.report = report

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
        """The daemon serves: send ``{"ready": true, **info}`` (info: JSON values)."""
        self._send({"ready": True, **info})

    def failed(self, reason: str) -> None:
        """The daemon failed before serving: send ``{"ready": false, "error": reason}``."""
        self._send({"ready": False, "error": reason})


def detach(preserve_fds: list, log_path: str, pidfile: PidFile, timeout: float,
           log_gid: int | None = None) -> Readiness:
    """Fork. The parent waits up to ``timeout`` seconds for the daemon's report and returns
    ``Readiness(in_daemon=False, report=...)``; the child enters a ``DaemonContext``
    (``preserve_fds`` kept open, stdout/stderr to ``log_path``, ``pidfile`` written) and
    returns ``Readiness(in_daemon=True)`` to report with. A child that fails to daemonize
    reports why and exits with :attr:`ExitCode.FAILURE`."""
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child:
        os.close(write_fd)
        try:
            return Readiness(None, in_daemon=False, report=_wait_ready(read_fd, timeout))
        finally:
            os.close(read_fd)
            os.waitpid(child, 0)  # DaemonContext's first fork exits at once
    os.close(read_fd)
    try:
        log_fd = statedir.open_file(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, log_gid)
        log = os.fdopen(log_fd, "a", buffering=1, encoding="utf-8")
        context = daemon.DaemonContext(
            detach_process=True,          # never guess: under PID 1 the default hangs start
            working_directory="/",
            umask=0o077,                  # nothing the daemon creates is readable by others
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
            Readiness(write_fd).failed(f"daemonizing failed: {exc}")
        finally:
            os._exit(ExitCode.FAILURE)
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
