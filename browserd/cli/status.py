"""What the daemon is doing: ``status``, ``metrics``, ``sites``."""

from __future__ import annotations

import json
import os
import sys

from browserd_client import Backoff, Client
from browserd_client.errors import BrowserdError, NotRunning, PermissionDenied
from browserd_client.state import PID_FILE, STATE_FILE

from ..daemon import statedir
from ..daemon.errors import ExitCode
from ..daemon.pidfile import is_locked, read_pid
from .common import client, client_failure, die, duration, load_config, verified


def _not_serving(config) -> dict | None:
    """Without asking the daemon: ``{"running": False, ...}`` when it is surely not
    running; ``stale`` when its pidfile is not locked (no live daemon) but state files
    remain (a daemon that died without cleaning up, e.g. SIGKILL). None: ask it."""
    stopped = {"running": False, "stale": False, "state_dir": config.state_dir}
    try:
        os.lstat(config.state_dir)
    except FileNotFoundError:
        return stopped
    except OSError:
        statedir.verify(config.state_dir)  # raises the one-line reason (e.g. not a directory)
    if not statedir.owned_by_us(config.state_dir):
        return None  # a group member cannot read the pidfile (nor check the dir): the daemon answers
    statedir.verify(config.state_dir)
    pidfile = config.path_in_state(PID_FILE)
    if is_locked(pidfile):
        return None
    left = [name for name in (PID_FILE, STATE_FILE, statedir.BROWSERS_FILE)
            if os.path.lexists(config.path_in_state(name))]
    if left:
        stopped.update(stale=True, pid=read_pid(pidfile), left=left)
    return stopped


def _status_reply(config) -> tuple[dict | None, dict | None, ExitCode]:
    """(the daemon's status, or None; when it is None, what to report; the exit code)."""
    try:
        stopped = _not_serving(config)
        if stopped is not None:
            return None, stopped, ExitCode.NOT_RUNNING
        with client(config) as c:
            return c.status(), None, ExitCode.OK
    except NotRunning:  # our dir: the pidfile is held but no state file yet, so starting
        starting = statedir.owned_by_us(config.state_dir)
        return None, {"running": False, "stale": False, "starting": starting, "state_dir": config.state_dir}, \
            ExitCode.NOT_RUNNING
    except PermissionDenied as exc:
        return None, {"running": None, "error": {"code": exc.code, "message": str(exc)}}, ExitCode.NO_PERMISSION
    except statedir.StateDirError as exc:
        return None, {"running": None, "error": {"code": "state_dir", "message": str(exc)}}, exc.exit_status
    except BrowserdError as exc:
        return None, {"running": None, "error": {"code": exc.code, "message": f"status failed: {exc.code}: {exc}"}}, \
            ExitCode.FAILURE


def cmd_status(args) -> ExitCode:
    """Print the daemon's status (``--json``: the reply of docs/status.md, or what the CLI
    found instead). Exit 0 running, 3 not running (also stale or starting), 77 the key
    is not readable, 78 the state dir is not ours, 1 any other failure."""
    config = load_config(args)
    status, report, code = _status_reply(config)
    if args.json:  # always JSON, whatever happened
        print(json.dumps(status if status is not None else report, indent=2))
        return code
    if status is None:
        return _print_not_serving(report, code)
    _print_status(status)
    return ExitCode.OK


def _print_not_serving(report: dict, code: ExitCode) -> ExitCode:
    if report.get("error"):
        return die(report["error"]["message"], code)
    if report.get("stale"):
        print(f"browserd is not running (stale: pid {report.get('pid') or '?'} died without cleaning up; "
              f"left {', '.join(report['left'])}; `browserd stop` or `start` cleans up)")
    elif report.get("starting"):
        print("browserd is not running yet (starting: the pidfile is held, no state file yet)")
    else:
        print("browserd is not running")
    return code


def _ms(v) -> str:
    return "-" if v is None else f"{v * 1000:.0f}ms"


def _print_status(status: dict) -> None:
    b, jobs = status["browsers"], status["jobs"]
    lat, wait = status["latency"], status["queue_wait"]
    print(f"browserd {status['version']} pid {status['pid']} on {status['address']}, "
          f"up {duration(status['uptime'])}{' (draining)' if status['draining'] else ''}")
    sandbox = status["sandbox"]
    print(f"user: {status['user']}; sandbox: {'on' if sandbox['on'] else 'off'} ({sandbox['reason']})")
    print(f"browsers: {b['total']}/{b['size']} ({b['idle']} idle, {b['busy']} busy, "
          f"{b['starting']} starting), {b['waiters']} jobs waiting, {status['connections']} connections")
    print(f"jobs: {jobs['served']} served, {jobs['failed']} failed "
          f"{json.dumps({k: v for k, v in jobs['by_outcome'].items() if k != 'ok'})}")
    print(f"latency p50 {_ms(lat['p50'])} p99 {_ms(lat['p99'])}; queue wait p50 {_ms(wait['p50'])} "
          f"p99 {_ms(wait['p99'])}; events {json.dumps(status['events'])}")
    if "config_file" in status:
        print(f"config file: {status['config_file'] or 'none'}; log: {status.get('log', '-')}")
    problems = status.get("site_problems") or []
    print(f"sites: {', '.join(status.get('sites', []))}; {len(problems)} load problem{'s' * (len(problems) != 1)}"
          + (":" if problems else ""))
    for problem in problems:
        print(f"  problem: {problem}")


def cmd_metrics(args) -> ExitCode:
    """Print the daemon's metrics (Prometheus text, as /metrics serves them) over the
    authenticated socket: for machines where metrics_listen is off."""
    config = load_config(args)
    try:
        with client(config) as c:
            text = c.metrics()
    except BrowserdError as exc:
        return client_failure(exc, "metrics")
    sys.stdout.write(text)
    return ExitCode.OK


def cmd_sites(args) -> ExitCode:
    """List the site classes: the daemon's, or when it is not running, those this
    configuration would load (load problems as warnings on stderr)."""
    config = load_config(args)
    source = "daemon"
    verified(config)
    try:
        with Client(state_dir=config.state_dir, retry=Backoff(attempts=3, deadline=3, wait_for_daemon=0)) as c:
            reply = c.sites(problems=True)
        sites, problems = reply["sites"], reply["problems"]
    except NotRunning:
        from ..sites import load_registry

        registry = load_registry(config.site_modules, config.site_dirs, config.sites)
        sites, problems = registry.describe(), registry.problems
        source = "local configuration (daemon not running)"
    except BrowserdError as exc:
        return client_failure(exc, "sites")
    for problem in problems:
        print(f"browserd: warning: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(sites, indent=2))
        return ExitCode.OK
    print(f"# site classes from {source}")
    for site in sites:
        params = ", ".join(site["params"]) or "-"
        print(f"{site['name']:<16} {site['description']}  [params: {params}]")
    return ExitCode.OK


def add_parsers(sub, common) -> None:
    """The subparsers of ``status``, ``metrics`` and ``sites``."""
    p = sub.add_parser("status", parents=[common], help="show pid, address, browsers and job counts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("metrics", parents=[common],
                       help="print the daemon's metrics in Prometheus text format (as /metrics)")
    p.set_defaults(func=cmd_metrics)
    p = sub.add_parser("sites", parents=[common], help="list site classes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sites)
