"""browserd command line: start | stop | restart | run | status | fetch | demo | reload | sites."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time

import psutil

from browserd_client import SITE_TIMEOUT, Backoff, Client
from browserd_client.errors import BrowserdError, NotRunning, PermissionDenied
from browserd_client.state import PID_FILE, STATE_FILE, default_state_dir

from . import __version__
from . import cli_options
from . import config as configmod
from . import demo
from . import statedir

# Exit codes: a documented contract (README "Exit codes").
EXIT_OK = 0
EXIT_FAILURE = 1          # the operation failed (fetch error, start failed, ...)
EXIT_USAGE = 2            # bad command line (argparse)
EXIT_NOT_RUNNING = 3      # status/fetch/demo/reload: no daemon (LSB "program is not running")
EXIT_ALREADY_RUNNING = 4  # start: a live daemon holds the pidfile
EXIT_HTTP_ERROR = 5        # fetch: the page's HTTP status is 400 or above (unless --allow-status)
EXIT_NO_PERMISSION = 77   # status/fetch/...: the daemon's key is not readable by this user (EX_NOPERM)
EXIT_UNAVAILABLE = 69     # a dependency is missing: chromium, chromedriver, webdriver-manager
EXIT_CONFIG = 78          # bad configuration (file, environment or flags)
EXIT_STATE_DIR = EXIT_CONFIG  # the state dir is not ours (symlink, other owner, writable by others, ...)

logger = logging.getLogger("browserd")


def _die(message: str, code: int) -> int:
    print(f"browserd: {message}", file=sys.stderr)
    return code


def _client_failure(exc: BrowserdError, what: str, not_running_hint: str = "") -> int:
    """The one mapping of a failed call to the daemon to a message and an exit code:
    not running (3), not allowed to read the key (77), anything else (1)."""
    if isinstance(exc, NotRunning):
        return _die(f"{exc}{not_running_hint}", EXIT_NOT_RUNNING)
    if isinstance(exc, PermissionDenied):
        return _die(str(exc), EXIT_NO_PERMISSION)
    return _die(f"{what} failed: {exc.code}: {exc}", EXIT_FAILURE)


def _setting_flags(args) -> dict:
    """The settings given as flags on this command line (name -> value)."""
    return {s.name: getattr(args, s.name) for s in configmod.SETTINGS if getattr(args, s.name, None) is not None}


def _load_config(args, server: bool) -> configmod.Config:
    return configmod.load(args.config, flags=_setting_flags(args))


# -- server commands -------------------------------------------------------------------------

def cmd_start(args, config: configmod.Config | None = None) -> int:
    from .daemonize import detach
    from .lifecycle import Arbiter, StartError, close_logging, configure_logging

    config = config or _load_config(args, server=True)
    os.umask(0o077)  # files, log and socket are private unless a mode says otherwise
    statedir.prepare(config.state_dir, config.group_gid)  # before the log is opened in it
    if config.log_file or not args.foreground_run:  # `run` without log_file logs to stderr
        problem = statedir.check_log_file(config.log_path, config.group_gid)
        if problem:
            raise configmod.ConfigError(f"log_file (from {config.sources['log_file']}): {config.log_path}: {problem}")
    if args.foreground_run:
        return _run_foreground(config)
    configure_logging(config, "prepare")
    arbiter = Arbiter(config)
    try:
        arbiter.prepare()
    except StartError as exc:
        return _die(str(exc), exc.exit_code)
    close_logging()
    result = detach(arbiter.preserved_fds(), config.log_path, arbiter.pidfile, timeout=config.start_timeout,
                    log_gid=config.group_gid)
    if isinstance(result, dict):  # the CLI: report what the daemon said
        if not result.get("ready"):
            _end_unserved_browsers(arbiter, config)
            return _die(f"start failed: {result.get('error')} (log: {config.log_path})", EXIT_FAILURE)
        for problem in result.get("site_problems", []):
            print(f"browserd: warning: site classes: {problem}", file=sys.stderr)
        print(f"browserd started: pid {result['pid']}, listening on {result['address']}, "
              f"{result['browsers']} browser{'s' if result['browsers'] != 1 else ''} ready in {arbiter.ready_seconds:.2f}s, "
              f"state dir {result['state_dir']}")
        return EXIT_OK
    try:
        configure_logging(config, "daemon")
        code = arbiter.serve(result, foreground=False)
    except BaseException as exc:  # never leave browsers behind a daemon that failed
        result.failed(f"{type(exc).__name__}: {exc}")
        arbiter.abort()
        raise
    sys.exit(code)


def _end_unserved_browsers(arbiter, config) -> None:
    """The daemon failed before serving: if it is gone, end the browsers this process
    started for it; if it still holds the pidfile, ask it to stop (it cleans up)."""
    from .browser import kill_recorded
    from .daemonize import daemon_identity, is_locked

    pidfile = config.path_in_state(PID_FILE)
    if is_locked(pidfile):
        proc, why = daemon_identity(pidfile)
        if proc is not None:
            proc.send_signal(signal.SIGQUIT)
        else:
            print(f"browserd: not signalling: {why}", file=sys.stderr)
        return
    for browser in arbiter.pool.browsers():
        kill_recorded(browser.record())


def _run_foreground(config) -> int:
    from .daemonize import Readiness
    from .lifecycle import Arbiter, StartError, configure_logging

    configure_logging(config, "foreground")
    arbiter = Arbiter(config)
    try:
        arbiter.prepare()
    except StartError as exc:
        return _die(str(exc), exc.exit_code)
    arbiter.pidfile.write(os.getpid())
    return arbiter.serve(Readiness(None), foreground=True)


def cmd_run(args) -> int:
    args.foreground_run = True
    return cmd_start(args)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def cmd_stop(args) -> int:
    from .daemonize import daemon_identity, is_locked, read_pid
    from .lifecycle import clean_stale

    config = _load_config(args, server=False)
    if not statedir.verify(config.state_dir):
        print("browserd is not running")
        return EXIT_OK
    pidfile = config.path_in_state(PID_FILE)
    if not is_locked(pidfile):
        stale = any(os.path.lexists(config.path_in_state(name))
                    for name in (PID_FILE, STATE_FILE, statedir.BROWSERS_FILE))
        if stale:
            killed = clean_stale(config, read_pid(pidfile))
            try:
                os.unlink(pidfile)
            except FileNotFoundError:
                pass
            print(f"browserd was not running; cleaned up a stale pidfile ({killed} leftover processes ended)")
        else:
            print("browserd is not running")
        return EXIT_OK
    proc, why = daemon_identity(pidfile)  # never a pid read from a file alone
    if proc is None:
        return _die(f"not stopping: {why} (pidfile {pidfile}); nothing was signalled", EXIT_FAILURE)
    pid = proc.pid
    t0 = time.monotonic()
    timeout = args.timeout if args.timeout is not None else config.drain_timeout + 15
    # psutil re-checks the create time before each signal: a reused pid is never hit.
    _signal(proc, signal.SIGTERM)
    if not _wait_stopped(pid, pidfile, timeout):
        print(f"browserd: pid {pid} still running after {timeout:.0f}s; forcing", file=sys.stderr)
        _signal(proc, signal.SIGTERM)  # the second stop signal skips the drain
        if not _wait_stopped(pid, pidfile, 15):
            print(f"browserd: pid {pid} ignored SIGTERM; SIGKILL", file=sys.stderr)
            _signal(proc, signal.SIGKILL)
            _wait_stopped(pid, pidfile, 5)
            clean_stale(config, pid)
    print(f"browserd stopped (pid {pid}) in {time.monotonic() - t0:.2f}s")
    return EXIT_OK


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def _wait_stopped(pid: int, pidfile: str, timeout: float) -> bool:
    from .daemonize import is_locked

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_locked(pidfile) and _gone(pid):
            return True
        time.sleep(0.05)
    return False


def cmd_restart(args) -> int:
    """Stop, then start with the configuration the daemon was started with (its recorded
    config file, flags and environment values), unless this command line gives one
    (``--config`` or any setting flag but ``--state-dir``): then that one, as ``start``."""
    config = _restart_config(args)
    code = cmd_stop(args)
    if code != EXIT_OK:
        return code
    return cmd_start(args, config)


def _restart_config(args) -> configmod.Config:
    given = {k for k in _setting_flags(args) if k != "state_dir"}
    if args.config is not None or given:
        return _load_config(args, server=True)
    state_dir = os.path.abspath(args.state_dir or default_state_dir())
    data = None
    if statedir.verify(state_dir):
        data = statedir.read_json(os.path.join(state_dir, statedir.CONFIG_FILE), None)
    if data is None:  # never started here (or by a browserd from before the record)
        return _load_config(args, server=True)
    config = configmod.from_record(data, state_dir)
    print(f"browserd: restarting with the configuration it was started with "
          f"(config file {config.path or 'none'}; {len(data['flags']) + len(data['env'])} flag/environment values)",
          file=sys.stderr)
    return config


# -- client commands -------------------------------------------------------------------------

def _verified(config) -> None:
    """A client command run by the state dir's owner checks the dir like the daemon does
    (raises StateDirError); another user (a ``group`` member) relies on the daemon's."""
    if statedir.owned_by_us(config.state_dir):
        statedir.verify(config.state_dir)


#: A command of the CLI says "not running" at once (exit 3) rather than wait for a daemon
#: to appear; one that is there is retried like any client's call.
CLI_RETRY = Backoff(deadline=10.0, wait_for_daemon=0)


def _client(args, config, timeout: float = 60.0) -> Client:
    _verified(config)
    return Client(state_dir=config.state_dir, timeout=timeout, retry=CLI_RETRY)


def _not_serving(config) -> dict | None:
    """Without asking the daemon: ``{"running": False, ...}`` when it is surely not
    running; ``stale`` when its pidfile is not locked (no live daemon) but state files
    remain (a daemon that died without cleaning up, e.g. SIGKILL). None: ask it."""
    from .daemonize import is_locked, read_pid

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


def _status_reply(args, config) -> tuple[dict | None, dict | None, int]:
    """(the daemon's status, or None; when it is None, what to report; the exit code)."""
    try:
        stopped = _not_serving(config)
        if stopped is not None:
            return None, stopped, EXIT_NOT_RUNNING
        with _client(args, config) as client:
            return client.status(), None, EXIT_OK
    except NotRunning:  # our dir: the pidfile is held but no state file yet, so starting
        starting = statedir.owned_by_us(config.state_dir)
        return None, {"running": False, "stale": False, "starting": starting, "state_dir": config.state_dir}, \
            EXIT_NOT_RUNNING
    except PermissionDenied as exc:
        return None, {"running": None, "error": {"code": exc.code, "message": str(exc)}}, EXIT_NO_PERMISSION
    except statedir.StateDirError as exc:
        return None, {"running": None, "error": {"code": "state_dir", "message": str(exc)}}, EXIT_STATE_DIR
    except BrowserdError as exc:
        return None, {"running": None, "error": {"code": exc.code, "message": f"status failed: {exc.code}: {exc}"}}, \
            EXIT_FAILURE


def cmd_status(args) -> int:
    config = _load_config(args, server=False)
    status, report, code = _status_reply(args, config)
    if args.json:  # always JSON, whatever happened
        print(json.dumps(status if status is not None else report, indent=2))
        return code
    if status is None:
        if report.get("error"):
            return _die(report["error"]["message"], code)
        if report.get("stale"):
            print(f"browserd is not running (stale: pid {report.get('pid') or '?'} died without cleaning up; "
                  f"left {', '.join(report['left'])}; `browserd stop` or `start` cleans up)")
        elif report.get("starting"):
            print("browserd is not running yet (starting: the pidfile is held, no state file yet)")
        else:
            print("browserd is not running")
        return code
    b, jobs = status["browsers"], status["jobs"]
    lat, wait = status["latency"], status["queue_wait"]

    def ms(v):
        return "-" if v is None else f"{v * 1000:.0f}ms"

    print(f"browserd {status['version']} pid {status['pid']} on {status['address']}, "
          f"up {_duration(status['uptime'])}{' (draining)' if status['draining'] else ''}")
    sandbox = status["sandbox"]
    print(f"user: {status['user']}; sandbox: {'on' if sandbox['on'] else 'off'} ({sandbox['reason']})")
    print(f"browsers: {b['total']}/{b['size']} ({b['idle']} idle, {b['busy']} busy, "
          f"{b['starting']} starting), {b['waiters']} jobs waiting, {status['connections']} connections")
    print(f"jobs: {jobs['served']} served, {jobs['failed']} failed "
          f"{json.dumps({k: v for k, v in jobs['by_outcome'].items() if k != 'ok'})}")
    print(f"latency p50 {ms(lat['p50'])} p99 {ms(lat['p99'])}; queue wait p50 {ms(wait['p50'])} "
          f"p99 {ms(wait['p99'])}; events {json.dumps(status['events'])}")
    if "config_file" in status:
        print(f"config file: {status['config_file'] or 'none'}; log: {status.get('log', '-')}")
    problems = status.get("site_problems") or []
    print(f"sites: {', '.join(status.get('sites', []))}; {len(problems)} load problem{'s' * (len(problems) != 1)}"
          + (":" if problems else ""))
    for problem in problems:
        print(f"  problem: {problem}")
    return EXIT_OK


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _params(pairs) -> dict:
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {pair!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _fetch_timeouts(client: Client, args, config) -> tuple:
    """(the ``timeout`` to send with each fetch, the seconds the client should wait for a
    reply, before its grace). Without ``--timeout`` none is sent: the daemon gives each job
    the site's own timeout, else ``job_timeout`` (this configuration's, which the CLI takes
    to be the daemon's, as ``stop`` does with ``drain_timeout``)."""
    if args.timeout is not None:
        return args.timeout, args.timeout
    for site in client.sites():
        if site.get("name") == args.site and site.get("timeout"):
            return SITE_TIMEOUT, float(site["timeout"])
    return SITE_TIMEOUT, config.job_timeout


def cmd_fetch(args) -> int:
    if (args.url is None) == (args.input is None):
        return _die("fetch needs either a URL or -i FILE", EXIT_USAGE)
    config = _load_config(args, server=False)
    try:
        params = _params(args.param)
        job = cli_options.job_options_from_args(args)  # job option flags, as client kwargs
    except (ValueError, TypeError) as exc:
        return _die(str(exc), EXIT_USAGE)
    except OSError as exc:
        return _die(f"{exc.filename}: {exc.strerror}", EXIT_FAILURE)
    if args.wait_for:
        params["wait_for"] = args.wait_for
    if args.input is not None:
        return _fetch_batch(args, config, {"params": params, **job})
    try:
        with _client(args, config) as client:
            timeout, client.timeout = _fetch_timeouts(client, args, config)
            result = client.fetch(args.url, site=args.site, timeout=timeout, params=params, **job)
        extra = cli_options.save_outputs(args, result)  # screenshot, PDF, ... files; --json fields
    except BrowserdError as exc:
        return _client_failure(exc, "fetch")
    except OSError as exc:
        return _die(f"{exc.filename}: {exc.strerror}", EXIT_FAILURE)
    if args.json:
        record = {"url": result.url, "requested_url": result.requested_url, "title": result.title,
                  "site": result.site, "browser": result.browser, "timing": result.timing,
                  "notes": result.notes, "status": result.status, "headers": result.headers,
                  "mime_type": result.mime_type, "redirects": result.redirects, "charset": result.charset,
                  "source": result.source, **extra}
        if result.body is not None:
            import base64

            record["body"] = base64.b64encode(result.body).decode("ascii")
        out = json.dumps(record, ensure_ascii=False).encode("utf-8")
    elif cli_options.value_replaces_page(args):
        out = json.dumps(result.value, ensure_ascii=False).encode("utf-8")
    elif result.body is not None:
        out = result.body
    else:
        out = as_utf8_html(result.source).encode("utf-8")
    if args.output and args.output != "-":
        with open(args.output, "wb") as f:
            f.write(out)
        print(f"{result.url}: {result.status or '-'} {len(out)} bytes in {result.timing.get('total', 0):.3f}s "
              f"-> {args.output}", file=sys.stderr)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(out if out.endswith(b"\n") else out + b"\n")
        sys.stdout.flush()
    if result.status is not None and result.status >= 400 and not args.allow_status:
        print(f"fetch: {result.url} answered HTTP {result.status} (exit {EXIT_HTTP_ERROR}; --allow-status "
              f"to exit 0)", file=sys.stderr)
        return EXIT_HTTP_ERROR
    return EXIT_OK


def as_utf8_html(source: str) -> str:
    """The rendered source as saved: it is written in UTF-8, so it must say so. Any
    ``<meta charset>`` (or http-equiv Content-Type) is rewritten to UTF-8; a page that
    declares none gets one at the start of its <head>."""
    import re

    meta = re.compile(r"<meta\b[^>]*?(?:charset\s*=|http-equiv\s*=\s*[\"']?content-type)[^>]*>", re.I)
    fixed, n = meta.subn('<meta charset="utf-8">', source)
    if n:
        return fixed
    head = re.search(r"<head\b[^>]*>", source, re.I)
    if head:
        return source[:head.end()] + '<meta charset="utf-8">' + source[head.end():]
    return '<meta charset="utf-8">' + source


#: File extensions of bodies that are not HTML, by MIME type.
_EXTENSIONS = {"application/json": ".json", "text/csv": ".csv", "text/plain": ".txt", "application/pdf": ".pdf",
               "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
               "image/svg+xml": ".svg", "application/xml": ".xml", "text/xml": ".xml"}


def _extension(result) -> str:
    if result.body is None:
        return ".html"
    import mimetypes

    kind = (result.mime_type or "").split(";")[0].strip().lower()
    return _EXTENSIONS.get(kind) or mimetypes.guess_extension(kind) or ".bin"


# -- fetch -i: many URLs into a directory ----------------------------------------------------

INDEX_FILE = "index.jsonl"


def _read_urls(path: str) -> list[str]:
    """The URLs of a list file, in order and once each; blank lines and ``#`` comments skipped."""
    import contextlib

    with (open(path, encoding="utf-8") if path != "-" else contextlib.nullcontext(sys.stdin)) as f:
        lines = (line.strip() for line in f)
        return list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


def _page_file(url: str) -> str:
    """A stable, safe file name for a URL: sha1 prefix, then its host and path, readable."""
    import hashlib
    import re
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{parts.hostname or ''}{parts.path}").strip("._")[:80]
    return f"{hashlib.sha1(url.encode('utf-8')).hexdigest()[:12]}-{readable or 'page'}"


def _read_index(path: str) -> tuple[dict[str, dict], bool]:
    """The last record of each URL in an index, and whether the index ends mid-line (a run
    killed while writing; that line is skipped)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}, False
    records: dict[str, dict] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
            records[record["url"]] = record
        except (ValueError, KeyError, TypeError):
            continue
    return records, bool(text) and not text.endswith("\n")


class _Progress:
    """A bar with rate and ETA when ``stream`` is a terminal; one plain line per URL otherwise."""

    def __init__(self, total: int, stream):
        self.total, self.stream, self.tty = total, stream, stream.isatty()
        self.done = self.failed = 0
        self.t0 = time.monotonic()
        self._draw()

    def update(self, result, record: dict) -> None:
        self.done += 1
        self.failed += not result.ok
        outcome = f"ok {result.url} -> {record['file']}" if result.ok else \
            f"failed {result.code} {result.url}: {(result.message or '').removeprefix(result.url + ': ')}"
        if not self.tty:
            print(f"[{self.done}/{self.total}] {outcome}", file=self.stream, flush=True)
        elif not result.ok:  # failures stay on screen above the bar
            self.stream.write(f"\r\x1b[K{outcome}\n")
        self._draw()

    def _draw(self) -> None:
        if not self.tty:
            return
        rate = self.done / max(time.monotonic() - self.t0, 1e-6)
        eta = _duration((self.total - self.done) / rate) if rate else "?"
        filled = 30 * self.done // max(self.total, 1)
        self.stream.write(f"\r\x1b[K[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                          f"{rate:.1f}/s ETA {eta}, {self.failed} failed")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _fetch_batch(args, config, params: dict) -> int:
    import contextlib
    from collections import Counter

    if not args.output or args.output == "-":
        return _die("fetch -i needs -o DIR, the directory to save the pages in", EXIT_USAGE)
    if args.jobs < 1:
        return _die("-j must be at least 1", EXIT_USAGE)
    try:
        urls = cli_options.read_batch_input(args.input)  # URLs, and JSON lines with options
        os.makedirs(args.output, exist_ok=True)
    except OSError as exc:
        return _die(f"{exc.filename or args.input}: {exc.strerror}", EXIT_FAILURE)
    except ValueError as exc:
        return _die(str(exc), EXIT_USAGE)
    index_path = os.path.join(args.output, INDEX_FILE)
    saved, torn = _read_index(index_path)
    todo = [u for u in urls if not (saved.get(cli_options.item_url(u), {}).get("ok") and os.path.exists(
        os.path.join(args.output, saved[cli_options.item_url(u)].get("file") or "")))]
    failed = Counter()
    progress = _Progress(len(todo), sys.stderr)
    t0 = time.monotonic()
    try:
        with _client(args, config) as client, open(index_path, "a", encoding="utf-8") as index:
            client.ping()  # not running: say so once, not once per URL
            client.retry = Backoff()  # then ride through a restart like any client (30 s)
            timeout, client.timeout = _fetch_timeouts(client, args, config)
            if torn:
                index.write("\n")
            results = client.map(todo, site=args.site, concurrency=args.jobs, timeout=timeout, **params)
            with contextlib.closing(results):
                for r in results:
                    record = {"url": r.url, "ok": r.ok, "file": None, "code": r.code, "message": r.message}
                    if r.ok:
                        res = r.result
                        record.update(file=_page_file(r.url) + _extension(res), final_url=res.url,
                                      title=res.title, seconds=res.timing.get("total"), status=res.status,
                                      mime_type=res.mime_type, charset=res.charset,
                                      saved_charset="utf-8" if res.body is None else None,
                                      redirects=res.redirects)
                        path = os.path.join(args.output, record["file"])
                        with open(path + ".part", "wb") as f:
                            f.write(res.body if res.body is not None else as_utf8_html(res.source).encode("utf-8"))
                        os.replace(path + ".part", path)
                        record.update(cli_options.save_batch_outputs(res, path))
                    else:
                        failed[r.code] += 1
                    index.write(json.dumps(record, ensure_ascii=False) + "\n")
                    index.flush()
                    progress.update(r, record)
    except BrowserdError as exc:
        return _client_failure(exc, "fetch")
    except OSError as exc:
        return _die(f"{exc.filename or args.output}: {exc.strerror}", EXIT_FAILURE)
    finally:
        progress.close()
    elapsed = time.monotonic() - t0
    summary = {"urls": len(urls), "skipped": len(urls) - len(todo), "saved": len(todo) - sum(failed.values()),
               "failed": dict(failed), "elapsed": round(elapsed, 3), "index": index_path}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"fetched {summary['saved']} of {len(todo)} URLs into {args.output} in {elapsed:.1f}s "
              f"({len(todo) / max(elapsed, 1e-6):.1f}/s); {summary['skipped']} skipped (already saved)")
        codes = ", ".join(f"{code} {n}" for code, n in failed.most_common())
        print(f"failed {sum(failed.values())}" + (f": {codes}" if codes else ""))
        print(f"index: {index_path}")
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_reload(args) -> int:
    """SIGHUP the daemon, wait until it has loaded the site classes again, report them."""
    from .daemonize import daemon_identity, is_locked

    config = _load_config(args, server=False)
    if not statedir.verify(config.state_dir):
        print("browserd is not running")
        return EXIT_NOT_RUNNING
    pidfile = config.path_in_state(PID_FILE)
    if not is_locked(pidfile):
        print("browserd is not running")
        return EXIT_NOT_RUNNING
    proc, why = daemon_identity(pidfile)
    if proc is None:
        return _die(f"not reloading: {why} (pidfile {pidfile}); nothing was signalled", EXIT_FAILURE)
    pid = proc.pid
    try:
        with _client(args, config, timeout=10) as client:
            before = client.status().get("sites_generation", 0)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            deadline = t0 + args.timeout
            while True:
                status = client.status()
                if status.get("sites_generation", 0) > before:
                    break
                if time.monotonic() > deadline:
                    return _die(f"pid {pid} did not reload its site classes within {args.timeout:.0f}s "
                                f"(see {config.log_path})", EXIT_FAILURE)
                time.sleep(0.05)
    except BrowserdError as exc:
        return _die(f"reload failed: {exc.code}: {exc}", EXIT_FAILURE)
    print(f"browserd: site classes reloaded in {time.monotonic() - t0:.2f}s (generation "
          f"{status['sites_generation']}; browsers kept): {', '.join(status['sites'])}")
    for problem in status["site_problems"]:
        print(f"browserd: error: {problem}", file=sys.stderr)
    return EXIT_FAILURE if status["site_problems"] else EXIT_OK


def cmd_sites(args) -> int:
    config = _load_config(args, server=False)
    source = "daemon"
    _verified(config)
    try:
        with Client(state_dir=config.state_dir, retry=Backoff(attempts=3, deadline=3, wait_for_daemon=0)) as client:
            reply = client.sites(problems=True)
        sites, problems = reply["sites"], reply["problems"]
    except NotRunning:
        from .sites import load_registry

        registry = load_registry(config.site_modules, config.site_dirs, config.sites)
        sites, problems = registry.describe(), registry.problems
        source = "local configuration (daemon not running)"
    except BrowserdError as exc:
        return _client_failure(exc, "sites")
    for problem in problems:
        print(f"browserd: warning: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(sites, indent=2))
        return EXIT_OK
    print(f"# site classes from {source}")
    for site in sites:
        params = ", ".join(site["params"]) or "-"
        print(f"{site['name']:<16} {site['description']}  [params: {params}]")
    return EXIT_OK


def cmd_metrics(args) -> int:
    """Print the daemon's metrics (Prometheus text, as /metrics serves them) over the
    authenticated socket: for machines where metrics_listen is off."""
    config = _load_config(args, server=False)
    try:
        with _client(args, config) as client:
            text = client.metrics()
    except BrowserdError as exc:
        return _client_failure(exc, "metrics")
    sys.stdout.write(text)
    return EXIT_OK


def cmd_demo(args) -> int:
    """Fetch the daemon's own demo page (served by the daemon on 127.0.0.1, content built
    by JavaScript after 300 ms) through it, and print the rendered source."""
    config = _load_config(args, server=False)
    try:
        with _client(args, config) as client:
            url = client.status().get("demo_url")
            if not url:
                return _die("this daemon serves no demo page (its browsers are on a Grid)", EXIT_FAILURE)
            result = client.fetch(url, wait_for="#built")
    except BrowserdError as exc:
        return _client_failure(exc, "demo fetch", " (start it first: browserd start)")
    print(f"# {result.url} rendered by browser {result.browser} in {result.timing['total']:.3f}s "
          f"(title {result.title!r}):")
    print(result.source)
    return EXIT_OK if demo.MARKER in result.source else EXIT_FAILURE


# -- parser ----------------------------------------------------------------------------------

FETCH_EPILOG = """\
with -i FILE -o DIR: each page is saved as DIR/<sha1 prefix>-<host_path>.html; every
outcome is appended to DIR/index.jsonl ({"url", "ok", "file", "code", "message", ...},
the last line of a URL wins), so a second run fetches only what is not saved yet.
Progress goes to stderr (a bar on a terminal, one line per URL otherwise), the
summary to stdout.

Saved pages are UTF-8 and declare it (<meta charset="utf-8">, the page's own charset
goes to index.jsonl as "charset"); a document that is not HTML (JSON, CSV, PDF, an
attachment) is saved as its bytes, with a fitting extension. index.jsonl records also
carry "status", "mime_type" and "redirects".

exit codes: 0 every URL fetched (or already saved); 1 a fetch failed (with -i: any
URL failed); 2 bad command line; 3 browserd is not running; 5 (a single URL) the
page's HTTP status is 400 or above, unless --allow-status."""

def _add_setting_flag(parser, setting: configmod.Setting) -> None:
    """One declared setting as a flag: ``--name`` (a bool: ``--name/--no-name``; a list:
    comma-separated, or a JSON array when a value holds a comma). Values are checked by
    config.load, which names the setting and the flag."""
    kwargs = {"dest": setting.name, "default": None, "help": f"{setting.doc} (${setting.env})"}
    if setting.type is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif setting.type is list:
        kwargs.update(metavar="A,B", help=f"{setting.doc} Comma-separated, or a JSON array "
                      f"('[\"a, b\"]'); a value starting with - needs {setting.flag}=VALUE (${setting.env})")
    else:
        kwargs["metavar"] = setting.type.__name__.upper() if setting.type in (int, float) else "TEXT"
    parser.add_argument(setting.flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML config file (or $BROWSERD_CONFIG)")
    _add_setting_flag(common, configmod.setting("state_dir"))

    server = argparse.ArgumentParser(add_help=False)
    group = server.add_argument_group("settings (each also BROWSERD_<NAME> in the environment, or NAME in "
                                      "the config file)")
    for setting in configmod.SETTINGS:
        if setting.name != "state_dir":  # every command has --state-dir (common)
            _add_setting_flag(group, setting)

    parser = argparse.ArgumentParser(prog="browserd", description="A daemonized pool of warm headless Chromium browsers.")
    parser.add_argument("--version", action="version", version=f"browserd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("start", parents=[common, server], help="start the daemon in the background")
    p.set_defaults(func=cmd_start, foreground_run=False)
    p = sub.add_parser("run", parents=[common, server], help="run the server in the foreground (systemd)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("stop", parents=[common], help="drain and stop the daemon")
    p.add_argument("--timeout", type=float, help="seconds to wait before forcing (default drain_timeout + 15)")
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("restart", parents=[common, server], help="stop, then start")
    p.add_argument("--timeout", type=float, help="seconds to wait for the stop before forcing")
    p.set_defaults(func=cmd_restart, foreground_run=False)
    p = sub.add_parser("status", parents=[common], help="show pid, address, browsers and job counts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("fetch", parents=[common], help="fetch a URL's rendered page source, or a list of URLs (-i)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=FETCH_EPILOG + "\n\n" + cli_options.FLAGS_EPILOG)
    p.add_argument("url", nargs="?", help="the URL to fetch (or -i FILE)")
    p.add_argument("-i", "--input", metavar="FILE",
                   help="fetch every URL listed in FILE (one a line; blank lines and # comments skipped; - reads "
                        "stdin) into the directory -o, skipping those an earlier run saved")
    p.add_argument("-j", "--jobs", type=int, default=4, metavar="K", help="with -i: fetches at once (default 4)")
    p.add_argument("--site", default="generic", help="site class (default generic)")
    p.add_argument("--wait-for", metavar="CSS", help="wait for this CSS selector")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="site parameter (repeatable)")
    p.add_argument("--timeout", type=float, help="job timeout in seconds (default and maximum: the site's "
                   "timeout, else job_timeout)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the page here instead of stdout; with -i: the "
                   "directory for the pages and index.jsonl")
    p.add_argument("--json", action="store_true", help="print URL, status, headers, MIME type, redirects, title, "
                   "timing, notes and source (or base64 body) as JSON (with -i: the summary)")
    p.add_argument("--allow-status", action="store_true", help="exit 0 even when the page's HTTP status is 400 "
                   "or above (default: exit 5)")
    cli_options.add_job_option_flags(p)
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("metrics", parents=[common],
                       help="print the daemon's metrics in Prometheus text format (as /metrics)")
    p.set_defaults(func=cmd_metrics)
    p = sub.add_parser("demo", parents=[common], help="fetch a bundled JavaScript page and print it")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("reload", parents=[common],
                       help="reload the site classes without restarting the browsers (SIGHUP); "
                            "exit 1 if a site module failed to load")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the reload (default 15)")
    p.set_defaults(func=cmd_reload)
    p = sub.add_parser("sites", parents=[common], help="list site classes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sites)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except configmod.ConfigError as exc:
        return _die(f"config: {exc}", EXIT_CONFIG)
    except statedir.StateDirError as exc:
        return _die(str(exc), EXIT_STATE_DIR)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
