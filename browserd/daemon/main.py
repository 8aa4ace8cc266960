"""The daemon's main: ``start`` (prepare in the foreground, then detach and serve) and
``run`` (prepare and serve in the foreground: systemd ``Type=notify``, containers).

Both raise a :class:`~browserd.daemon.errors.HaltServer` carrying the exit status when
the daemon cannot start; nothing they started is left running.
"""

from __future__ import annotations

import os
import signal
import sys

import psutil

from browserd_client.state import PID_FILE

from ..browser import kill_recorded
from . import statedir
from .arbiter import Arbiter
from .daemonize import Readiness, detach
from .errors import ConfigError, ExitCode, StartFailed
from .logs import close_logging, configure_logging
from .pidfile import daemon_identity, is_locked


def _prepare_paths(config, log_to_file: bool) -> None:
    """The state dir (created or verified), then the log file's path, before a log is
    opened in it. Raises StateDirError or ConfigError (78)."""
    os.umask(0o077)  # files, log and socket are private unless a mode says otherwise
    statedir.prepare(config.state_dir, config.group_gid)
    if log_to_file:
        problem = statedir.check_log_file(config.log_path, config.group_gid)
        if problem:
            raise ConfigError(f"log_file (from {config.sources['log_file']}): {config.log_path}: {problem}")


def start(config) -> dict:
    """Start the daemon in the background and return once it serves: the readiness
    report (``pid``, ``address``, ``browsers``, ``state_dir``, ``log``,
    ``site_problems``; plus ``ready_seconds``, the seconds the browsers took to start).
    In the detached daemon this never returns: the process exits with the status of
    :meth:`Arbiter.serve`. Raises HaltServer (StartFailed when the daemon reported a
    failure after the fork)."""
    _prepare_paths(config, log_to_file=True)
    configure_logging(config, "prepare")
    arbiter = Arbiter(config)
    arbiter.prepare()
    close_logging()
    readiness = detach(arbiter.preserved_fds(), config.log_path, arbiter.pidfile, timeout=config.start_timeout,
                       log_gid=config.group_gid)
    if readiness.in_daemon:
        sys.exit(_serve_detached(arbiter, config, readiness))
    report = readiness.report
    if not report.get("ready"):
        _end_unserved_browsers(arbiter, config)
        raise StartFailed(f"start failed: {report.get('error')} (log: {config.log_path})")
    return {**report, "ready_seconds": arbiter.ready_seconds}


def _serve_detached(arbiter: Arbiter, config, readiness: Readiness) -> ExitCode:
    try:
        configure_logging(config, "daemon")
        return arbiter.serve(readiness, foreground=False)
    except BaseException as exc:  # never leave browsers behind a daemon that failed
        readiness.failed(f"{type(exc).__name__}: {exc}")
        arbiter.abort()
        raise


def run(config) -> ExitCode:
    """Prepare and serve in the foreground until stopped (logs to stderr unless
    ``log_file`` is set); returns the exit status. Raises HaltServer when it cannot
    start."""
    _prepare_paths(config, log_to_file=bool(config.log_file))
    configure_logging(config, "foreground")
    arbiter = Arbiter(config)
    arbiter.prepare()
    arbiter.pidfile.write(os.getpid())
    return arbiter.serve(Readiness(None), foreground=True)


#: Seconds a daemon that failed to report ready has to stop after SIGQUIT before it is killed.
UNSERVED_GRACE = 10.0


def _end_unserved_browsers(arbiter: Arbiter, config) -> None:
    """The daemon failed before serving: if it is gone, end the browsers this process
    started for it; if it still holds the pidfile, ask it to stop (it cleans up), and if it
    has not within ``UNSERVED_GRACE`` seconds, kill it and end the browsers here."""
    pidfile = config.path_in_state(PID_FILE)
    if is_locked(pidfile):
        proc, why = daemon_identity(pidfile)
        if proc is None:
            print(f"browserd: not signalling: {why}", file=sys.stderr)
            return
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(UNSERVED_GRACE)
            return
        except psutil.TimeoutExpired:  # stuck where no Python signal handler runs (a C call)
            print(f"browserd: the daemon (pid {proc.pid}) did not stop within {UNSERVED_GRACE:.0f}s "
                  "of SIGQUIT: killed", file=sys.stderr)
            proc.kill()
    for browser in arbiter.pool.browsers():
        kill_recorded(browser.record())
