"""The exit codes of ``browserd`` and the one tree of fatal errors that carry them.

Exit codes are a documented contract (README "Exit codes"; scripts, systemd units and the
test suite rely on each value). Where a BSD ``sysexits.h`` value fits, it is used:
``EX_UNAVAILABLE`` (69), ``EX_NOPERM`` (77), ``EX_CONFIG`` (78) — see sysexits(3), e.g.
https://man.freebsd.org/cgi/man.cgi?query=sysexits. A bad command line exits 2, not
``EX_USAGE`` (64): argparse exits 2 by itself, and our own usage errors say the same. 3 is
LSB's "program is not running" (``init-functions`` status actions). 130 is the shell's
128 + SIGINT.

A fatal error is an exception that knows its exit status, like gunicorn's
``HaltServer(reason, exit_status)`` (gunicorn/errors.py) and python-daemon's
``DaemonError`` tree: start-up code raises, the command line prints ``reason`` on one line
and exits with ``exit_status``. No module outside this one writes an exit number.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every exit status the ``browserd`` command and the daemon process return."""

    OK = 0
    #: the operation failed: a fetch error, a start that failed, a refused signal, ...
    FAILURE = 1
    #: bad command line (argparse's own status)
    USAGE = 2
    #: status/fetch/demo/reload: no daemon (LSB "program is not running")
    NOT_RUNNING = 3
    #: start: a live daemon holds the pidfile
    ALREADY_RUNNING = 4
    #: fetch of one URL: the page's HTTP status is 400 or above (unless --allow-status)
    HTTP_ERROR = 5
    #: EX_UNAVAILABLE: a dependency is missing (chromium, chromedriver, webdriver-manager,
    #: a Grid without the capacity asked for)
    UNAVAILABLE = 69
    #: EX_NOPERM: the daemon's key is not readable by this user
    NO_PERMISSION = 77
    #: EX_CONFIG: bad configuration (file, environment or flags), or a state dir that is
    #: not ours (a symlink, another owner, writable by others, ...)
    CONFIG = 78
    #: interrupted by SIGINT (Ctrl-C) in the foreground of a command
    INTERRUPTED = 130


class HaltServer(Exception):
    """A fatal error: ``reason`` (one line, for the terminal and the log) and the
    ``exit_status`` (an :class:`ExitCode`) the process ends with. Subclasses set a default
    status; the constructor may override it."""

    exit_status: ExitCode = ExitCode.FAILURE
    #: what the command line prints before ``reason`` (``"config: "`` for config errors)
    prefix: str = ""

    def __init__(self, reason: str, exit_status: ExitCode | None = None):
        super().__init__(reason)
        self.reason = reason
        if exit_status is not None:
            self.exit_status = ExitCode(exit_status)

    def line(self) -> str:
        """The one line the command line prints (without the ``browserd: `` prefix)."""
        return self.prefix + self.reason


class ConfigError(HaltServer, ValueError):
    """A setting has a bad value; the reason names the setting and its source (78)."""

    exit_status = ExitCode.CONFIG
    prefix = "config: "


class StateDirError(HaltServer, RuntimeError):
    """The state directory (or a file in it, the pidfile included) is not ours or not
    usable: a one-line reason (78, a configuration error)."""

    exit_status = ExitCode.CONFIG


class StartError(HaltServer, RuntimeError):
    """Start-up failed in the foreground, before the daemon served (1 unless a subclass
    or the raiser says otherwise): nothing started is left running."""


class DependencyMissing(StartError):
    """A program or service the daemon needs is missing or unusable: chromium,
    chromedriver, webdriver-manager, or a Grid without capacity (69, EX_UNAVAILABLE)."""

    exit_status = ExitCode.UNAVAILABLE


class AlreadyRunning(StartError):
    """A live daemon holds the pidfile (4); ``pid`` is the pid it recorded (or None)."""

    exit_status = ExitCode.ALREADY_RUNNING

    def __init__(self, pid: int | None, path: str):
        super().__init__(f"browserd is already running (pid {pid}, pidfile {path})")
        self.pid = pid


class StartFailed(HaltServer):
    """The detached daemon reported that it failed before serving, or never reported
    (1); ``reason`` ends with where its log is."""


class NotOurProcess(HaltServer):
    """``stop``/``reload`` refused to signal: the pidfile's pid is not provably our
    daemon (1); nothing was signalled."""
