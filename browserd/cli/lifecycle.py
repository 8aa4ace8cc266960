"""The lifecycle commands: ``start``, ``run``, ``stop``, ``restart``, ``reload``.

The daemon itself (prepare, detach, serve) is :mod:`browserd.daemon.main`; these
commands start it, or find it by its pidfile and signal it once it is proved to be ours
(:func:`browserd.daemon.pidfile.daemon_identity`).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil

from browserd_client.errors import BrowserdError
from browserd_client.state import PID_FILE, STATE_FILE, default_state_dir

from .. import config as configmod
from ..daemon import statedir
from ..daemon.errors import ExitCode, NotOurProcess
from ..daemon.pidfile import daemon_identity, is_locked, read_pid
from ..daemon.statefiles import config_from_record
from .common import client, die, load_config, setting_flags


def cmd_start(args, config: configmod.Config | None = None) -> ExitCode:
    """Start the daemon in the background; print its pid, address and browsers once it
    serves. Exit 0, or the status of the HaltServer raised (4, 69, 78, 1)."""
    from ..daemon.main import start

    report = start(config or load_config(args))
    for problem in report.get("site_problems", []):
        print(f"browserd: warning: site classes: {problem}", file=sys.stderr)
    browsers = report["browsers"]
    print(f"browserd started: pid {report['pid']}, listening on {report['address']}, "
          f"{browsers} browser{'s' if browsers != 1 else ''} ready in {report['ready_seconds']:.2f}s, "
          f"state dir {report['state_dir']}")
    return ExitCode.OK


def cmd_run(args) -> ExitCode:
    """Serve in the foreground until stopped (systemd ``Type=notify``)."""
    from ..daemon.main import run

    return run(load_config(args))


def cmd_stop(args) -> ExitCode:
    """Drain and stop the daemon: SIGTERM, wait ``--timeout`` (default drain_timeout +
    15 s), SIGTERM again (no drain), 15 s, then SIGKILL and the stale sweep. Not running:
    exit 0 (a stale pidfile is cleaned up). Raises NotOurProcess when the pidfile's pid
    is not provably our daemon."""
    config = load_config(args)
    if not statedir.verify(config.state_dir):
        print("browserd is not running")
        return ExitCode.OK
    pidfile = config.path_in_state(PID_FILE)
    if not is_locked(pidfile):
        _clean_up_after_dead_daemon(config, pidfile)
        return ExitCode.OK
    proc, why = daemon_identity(pidfile)  # never a pid read from a file alone
    if proc is None:
        raise NotOurProcess(f"not stopping: {why} (pidfile {pidfile}); nothing was signalled")
    pid = proc.pid
    t0 = time.monotonic()
    timeout = args.timeout if args.timeout is not None else config.drain_timeout + 15
    # psutil re-checks the create time before each signal: a reused pid is never hit.
    _signal(proc, signal.SIGTERM)
    if not _wait_stopped(pid, pidfile, timeout):
        from ..daemon.stale import clean_stale  # imports Selenium: only when needed

        print(f"browserd: pid {pid} still running after {timeout:.0f}s; forcing", file=sys.stderr)
        _signal(proc, signal.SIGTERM)  # the second stop signal skips the drain
        if not _wait_stopped(pid, pidfile, 15):
            print(f"browserd: pid {pid} ignored SIGTERM; SIGKILL", file=sys.stderr)
            _signal(proc, signal.SIGKILL)
            _wait_stopped(pid, pidfile, 5)
            clean_stale(config, pid)
    print(f"browserd stopped (pid {pid}) in {time.monotonic() - t0:.2f}s")
    return ExitCode.OK


def _clean_up_after_dead_daemon(config, pidfile: str) -> None:
    stale = any(os.path.lexists(config.path_in_state(name))
                for name in (PID_FILE, STATE_FILE, statedir.BROWSERS_FILE))
    if not stale:
        print("browserd is not running")
        return
    from ..daemon.stale import clean_stale  # imports Selenium: only when needed

    killed = clean_stale(config, read_pid(pidfile))
    try:
        os.unlink(pidfile)
    except FileNotFoundError:
        pass
    print(f"browserd was not running; cleaned up a stale pidfile ({killed} leftover processes ended)")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def _wait_stopped(pid: int, pidfile: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_locked(pidfile) and _gone(pid):
            return True
        time.sleep(0.05)
    return False


def cmd_restart(args) -> ExitCode:
    """Stop, then start with the configuration the daemon was started with (its recorded
    config file, flags and environment values), unless this command line gives one
    (``--config`` or any setting flag but ``--state-dir``): then that one, as ``start``."""
    config = _restart_config(args)
    code = cmd_stop(args)
    if code != ExitCode.OK:
        return code
    return cmd_start(args, config)


def _restart_config(args) -> configmod.Config:
    given = {k for k in setting_flags(args) if k != "state_dir"}
    if args.config is not None or given:
        return load_config(args)
    state_dir = os.path.abspath(args.state_dir or default_state_dir())
    data = None
    if statedir.verify(state_dir):
        data = statedir.read_json(os.path.join(state_dir, statedir.CONFIG_FILE), None)
    if data is None:  # never started here (or by a browserd from before the record)
        return load_config(args)
    config = config_from_record(data, state_dir)
    print(f"browserd: restarting with the configuration it was started with "
          f"(config file {config.path or 'none'}; {len(data['flags']) + len(data['env'])} flag/environment values)",
          file=sys.stderr)
    return config


def cmd_reload(args) -> ExitCode:
    """SIGHUP the daemon, wait until it has loaded the site classes again, report them:
    exit 0, 1 when a site module failed to load or the reload timed out, 3 when not
    running. Raises NotOurProcess when the pidfile's pid is not provably our daemon."""
    config = load_config(args)
    pidfile = config.path_in_state(PID_FILE)
    if not statedir.verify(config.state_dir) or not is_locked(pidfile):
        print("browserd is not running")
        return ExitCode.NOT_RUNNING
    proc, why = daemon_identity(pidfile)
    if proc is None:
        raise NotOurProcess(f"not reloading: {why} (pidfile {pidfile}); nothing was signalled")
    try:
        with client(config, timeout=10) as c:
            before = c.status().get("sites_generation", 0)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            status = _wait_reloaded(c, before, t0 + args.timeout)
    except BrowserdError as exc:
        return die(f"reload failed: {exc.code}: {exc}", ExitCode.FAILURE)
    if status is None:
        return die(f"pid {proc.pid} did not reload its site classes within {args.timeout:.0f}s "
                   f"(see {config.log_path})", ExitCode.FAILURE)
    print(f"browserd: site classes reloaded in {time.monotonic() - t0:.2f}s (generation "
          f"{status['sites_generation']}; browsers kept): {', '.join(status['sites'])}")
    for problem in status["site_problems"]:
        print(f"browserd: error: {problem}", file=sys.stderr)
    return ExitCode.FAILURE if status["site_problems"] else ExitCode.OK


def _wait_reloaded(c, before: int, deadline: float) -> dict | None:
    """The daemon's status once its ``sites_generation`` passed ``before``; None at the
    deadline (time.monotonic)."""
    while True:
        status = c.status()
        if status.get("sites_generation", 0) > before:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def add_parsers(sub, common, server) -> None:
    """The lifecycle commands' subparsers (``common``: --config, --state-dir; ``server``:
    every setting as a flag)."""
    p = sub.add_parser("start", parents=[common, server], help="start the daemon in the background")
    p.set_defaults(func=cmd_start)
    p = sub.add_parser("run", parents=[common, server], help="run the server in the foreground (systemd)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("stop", parents=[common], help="drain and stop the daemon")
    p.add_argument("--timeout", type=float, help="seconds to wait before forcing (default drain_timeout + 15)")
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("restart", parents=[common, server], help="stop, then start")
    p.add_argument("--timeout", type=float, help="seconds to wait for the stop before forcing")
    p.set_defaults(func=cmd_restart)
    p = sub.add_parser("reload", parents=[common],
                       help="reload the site classes without restarting the browsers (SIGHUP); "
                            "exit 1 if a site module failed to load")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the reload (default 15)")
    p.set_defaults(func=cmd_reload)
