"""The daemon as one object: prepare, serve, stop (shaped like gunicorn's Arbiter).

``prepare`` does everything that can fail in the foreground, with a one-line reason:
pidfile lock, stale-daemon clean-up, authkey, site classes, binaries, listening socket,
and the browsers (started in parallel). ``serve`` runs after daemonizing: threads,
state file, readiness, then the main loop, where signal handlers only queue the signal
and ``handle_<signame>`` methods act on it. There is one shutdown path, warm then cold:
a first SIGTERM/SIGINT drains (running jobs finish up to ``drain_timeout``), a second
one stops at once.
"""

from __future__ import annotations

import enum
import errno
import logging
import logging.handlers
import os
import pwd
import resource
import secrets
import select
import shutil
import signal
import time

from browserd_client import protocol
from browserd_client.state import AUTHKEY_FILE, PID_FILE, STATE_FILE

from . import __version__, statedir, systemd
from . import config as configmod
from .browser import BrowserStartError, LaunchSpec, kill_recorded, processes_of
from .config import resolve_binary
from .daemon.errors import DependencyMissing, ExitCode, StartError, StateDirError
from .daemonize import PidFile, Readiness
from .egress import EgressProxy
from .netpolicy import DestinationPolicy
from .proxies import load_pools
from .pool import Pool
from .sandbox import sandbox_available
from .server import Server, bind
from .sites import load_registry
from .stats import Stats

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
HOUSEKEEPING_SECONDS = 1.0
RSS_EVERY = 5  # housekeeping rounds between RSS measurements of idle browsers


class StopLevel(enum.IntEnum):
    """How far a stop has gone: the first SIGTERM/SIGINT drains, a second one (or SIGQUIT)
    forces (rq's warm then cold shutdown). Ordered: ``level >= StopLevel.FORCE``."""

    RUNNING = 0
    DRAIN = 1
    FORCE = 2


def start_failure(exc: BaseException) -> ExitCode:
    """The exit status of a browser that failed to start, from its exception chain: an
    executable that cannot be run at all (``ENOENT``/``EACCES``/``ENOEXEC`` from exec) is a
    missing dependency (69); anything else a failed start (1)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOEXEC):
            return ExitCode.UNAVAILABLE
        exc = exc.__cause__ or exc.__context__
    return ExitCode.FAILURE


def driver_path(config) -> str | None:
    """The chromedriver to launch, from the configured driver source."""
    if config.driver_source == "grid":
        return None
    if config.driver_source == "webdriver-manager":
        try:
            from webdriver_manager.chrome import ChromeDriverManager
            from webdriver_manager.core.os_manager import ChromeType
        except ImportError:
            raise DependencyMissing("driver_source = webdriver-manager needs the extra: "
                                    "pip install 'browserd[wdm]'") from None
        try:
            return ChromeDriverManager(chrome_type=ChromeType.CHROMIUM).install()
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DependencyMissing(f"webdriver-manager could not provide chromedriver "
                                    f"(it downloads from the internet): {first}") from None
    try:
        return resolve_binary(config.chromedriver, "chromedriver")
    except FileNotFoundError as exc:
        raise DependencyMissing(str(exc)) from None


GRID_SANDBOX = (False, "driver_source = grid: the Grid nodes run the browsers, given --no-sandbox as before")


def chromium_sandbox(config) -> tuple[bool, str]:
    """Whether the browsers run with Chromium's sandbox, and why (see sandbox.py)."""
    return GRID_SANDBOX if config.driver_source == "grid" else sandbox_available()


def daemon_user() -> str:
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def launch_spec(config, sandbox: bool | None = None) -> LaunchSpec:
    chromedriver = driver_path(config)
    if sandbox is None:
        sandbox = chromium_sandbox(config)[0]
    if config.driver_source == "grid":
        chromium = "" if config.chromium == "chromium" else config.chromium
    else:
        try:
            chromium = resolve_binary(config.chromium, "chromium")
        except FileNotFoundError as exc:
            raise DependencyMissing(str(exc)) from None
    return LaunchSpec(
        chromium=chromium, chromedriver=chromedriver,
        grid_url=config.grid_url if config.driver_source == "grid" else None,
        extra_args=tuple(config.chromium_args),
        command_timeout=config.job_timeout + 30,
        start_timeout=config.start_timeout,
        sandbox=sandbox,
    )


def load_authkey(path: str, gid: int | None = None) -> bytes:
    """The shared secret: generated at first start, then kept across restarts; 0600 (0640
    to ``gid``). Only called once the state dir passed its checks: a planted key in a dir
    that is not ours is never used."""
    key = (statedir.read_file(path) or b"").strip()
    if key:
        statedir.set_mode(path, gid)
        return key
    key = secrets.token_hex(32).encode()
    statedir.write_file(path, key + b"\n", gid)
    return key


def sweepable(record, config) -> bool:
    """Whether a browser record may steer the stale-daemon sweep: its working dir must lie
    inside OUR (verified) profiles dir, and a Grid session must be on OUR configured Grid.
    A planted record can then only point at our own browsers."""
    if not isinstance(record, dict):
        return False
    if record.get("grid_url") or record.get("session_id"):
        return bool(config.grid_url) and record.get("grid_url") == config.grid_url
    workdir, pgid = record.get("workdir"), record.get("pgid", -1)
    return (isinstance(workdir, str) and os.path.isabs(workdir) and isinstance(pgid, int)
            and statedir.inside(workdir, config.profiles_dir))


def clean_stale(config, stale_pid: int | None) -> int:
    """End what a dead daemon left: browsers it recorded in the private ``browsers.json``
    (by process group and working dir, never by name, and only records inside our
    profiles dir), and any process still using our profiles directory. The state dir has
    passed :mod:`browserd.statedir`'s checks before this runs."""
    killed = 0
    data = statedir.read_json(config.path_in_state(statedir.BROWSERS_FILE), {})
    records = data.get("browsers", []) if isinstance(data, dict) else []
    for record in records:
        if not sweepable(record, config):
            logger.warning("ignoring a browser record outside %s: %.200r", config.profiles_dir, record)
            continue
        killed += kill_recorded(record)
    for proc in processes_of(-1, config.profiles_dir + os.sep):
        try:
            proc.kill()
            killed += 1
        except Exception:
            pass
    for name in (STATE_FILE, statedir.BROWSERS_FILE):
        try:
            os.unlink(config.path_in_state(name))
        except FileNotFoundError:
            pass
    shutil.rmtree(config.profiles_dir, ignore_errors=True)
    if stale_pid or killed:
        logger.warning("cleaned up after a dead daemon (pid %s): %d leftover browser processes ended",
                       stale_pid, killed)
    return killed


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (at most 65536): browsers and connections
    need descriptors, and the default soft 1024 is the first wall hit under load."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Arbiter:
    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)

    def __init__(self, config):
        self.config = config
        self.stats = Stats()
        self.pidfile = PidFile(config.path_in_state(PID_FILE))
        self.pool: Pool | None = None
        self.egress: EgressProxy | None = None
        self.pages = None  # the daemon's own page server (demo), once serving
        self.metrics = None  # the HTTP server of /metrics, /healthz, /readyz (metrics_listen)
        self.proxy_pools: dict = {}  # [proxies.NAME] pools, with their rotation state
        self.server: Server | None = None
        self.listener = None
        self.address: dict | None = None
        self.registry = None
        self.authkey = b""
        self.started_monotonic = time.monotonic()
        self.ready_seconds: float | None = None
        self.sandbox: tuple[bool, str] = (False, "not decided yet")
        self._signals: list[int] = []
        self._wake_r = self._wake_w = None
        self._stop = StopLevel.RUNNING
        self._state_records: list | None = None
        self._rounds = 0
        self._watchdog_every: float | None = None  # seconds between WATCHDOG=1 (systemd), None: off
        self._next_watchdog = 0.0

    # -- before daemonizing ------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything that can fail, in the foreground; cleans up after itself on failure."""
        config = self.config
        t0 = time.monotonic()
        os.umask(0o077)  # whatever we create is ours alone unless a mode says otherwise
        statedir.prepare(config.state_dir, config.group_gid)  # raises StateDirError (78)
        try:
            self.pidfile.acquire()  # raises AlreadyRunning (4)
        except OSError as exc:  # e.g. a directory where the pidfile goes
            raise StateDirError(f"cannot use pidfile {self.pidfile.path}: {exc.strerror}") from None
        try:
            clean_stale(config, self.pidfile.stale_pid)
            raise_fd_limit()
            self.sandbox = chromium_sandbox(config)
            spec = launch_spec(config, sandbox=self.sandbox[0])
            if spec.grid_url:
                from .grid import GridError, check_capacity

                try:
                    check_capacity(spec.grid_url, config.browsers)
                except GridError as exc:
                    raise DependencyMissing(str(exc)) from None
            try:
                self.authkey = load_authkey(config.path_in_state(AUTHKEY_FILE), config.group_gid)
            except OSError as exc:
                raise StateDirError(f"cannot use {exc.filename or AUTHKEY_FILE}: {exc.strerror}") from None
            self.registry = load_registry(config.site_modules, config.site_dirs, config.sites)
            self.proxy_pools = load_pools(dict(config.proxies), config.path or "config")
            try:
                self.listener, self.address = bind(config)
                if self.address.get("family") == "AF_UNIX":
                    secure_socket(self.address["path"], config.group_gid)
            except OSError as exc:
                raise StartError(str(exc)) from None
            if config.metrics_listen:
                from .metrics import MetricsServer

                try:
                    self.metrics = MetricsServer(config.metrics_listen, self)
                except OSError as exc:
                    raise StartError(f"metrics_listen {config.metrics_listen}: {exc.strerror or exc}") from None
            os.makedirs(config.profiles_dir, mode=0o700, exist_ok=True)
            if not spec.grid_url:
                own_port = {self.address["port"]} if self.address.get("port") else set()
                if self.metrics is not None:  # browsers may not scrape the daemon either
                    own_port.add(self.metrics.port)
                policy = DestinationPolicy(allow_networks=tuple(config.allow_networks),
                                           protected_ports=frozenset(own_port))
                self.egress = EgressProxy(policy, self.stats)
            self.pool = Pool(spec, config.browsers, None if spec.grid_url else config.profiles_dir,
                             self.stats, page_load_timeout=config.page_load_timeout,
                             queue_wait=config.queue_wait, recycle_after=config.recycle_after,
                             recycle_rss=config.recycle_rss_mb << 20, egress=self.egress,
                             max_queue=config.max_queue)
            if self.egress is not None:  # serves while browsers start; suspended for the fork
                self.egress.start()
            try:
                seconds = self.pool.start_browsers()
            except BrowserStartError as exc:
                raise StartError(f"{exc} (chromedriver and Chromium output: {config.log_path})",
                                 start_failure(exc)) from None
            logger.info("%d browsers ready in %.3fs", config.browsers, seconds)
            self._warn_privileges(spec)
            # Selenium's keep-alive sockets would not survive DaemonContext: drop them now;
            # and no thread may run across the fork (STYLE trap 5).
            self.pool.drop_http_connections()
            if self.egress is not None:
                self.egress.suspend()
        except BaseException:
            self._abort_prepare()
            raise
        self.ready_seconds = time.monotonic() - t0

    def _warn_privileges(self, spec: LaunchSpec) -> None:
        """Said once a start has succeeded (a failed start prints its one error line only)."""
        if os.geteuid() == 0:
            logger.warning("running as root: run browserd as an unprivileged user "
                           "(systemd/browserd.service runs it as 'browserd')")
        on, why = self.sandbox
        if on:
            logger.info("Chromium sandbox: on (%s)", why)
        elif spec.grid_url:
            logger.info("Chromium sandbox: off (%s)", why)
        else:
            logger.warning("Chromium sandbox: off (%s): browsers run with --no-sandbox", why)

    def abort(self) -> None:
        """Emergency stop after an unexpected failure: quit browsers, release state."""
        try:
            self._shutdown(force=True)
        except BaseException:
            logger.exception("emergency shutdown failed; ending browsers by record")
            for browser in self.pool.browsers() if self.pool else []:
                browser.kill()
            self.pidfile.release()

    def _abort_prepare(self) -> None:
        if self.egress is not None:
            self.egress.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.listener is not None:
            self.listener.close()
            if self.address and self.address.get("family") == "AF_UNIX":
                try:
                    os.unlink(self.address["path"])
                except FileNotFoundError:
                    pass
        shutil.rmtree(self.config.profiles_dir, ignore_errors=True)
        self.pidfile.release()

    def preserved_fds(self) -> list:
        """The listener, and what keeps the browsers alive: their namespaces' control
        sockets and egress listeners (closing those ends the browsers)."""
        metrics = [self.metrics.fileno()] if self.metrics is not None else []
        return [self.listener.fileno()] + metrics + self.pool.held_fds()

    # -- serving ------------------------------------------------------------------------------

    def serve(self, readiness: Readiness, foreground: bool) -> ExitCode:
        """Run until stopped; returns the process exit status."""
        try:
            self._install_signals()
            if self.egress is not None:
                self._serve_own_pages()
                self.egress.start()
            self.pool.start_threads()
            self.server = Server(self.config, self.listener, self.address, self.authkey, self.pool,
                                 self.registry, self.stats, self.status)
            self.server.proxy_pools = self.proxy_pools
            self.server.metrics_provider = self.metrics_text
            self.server.start()
            if self.metrics is not None:
                self.metrics.start()
            self._write_state()
        except BaseException as exc:
            logger.exception("failed to start serving")
            readiness.failed(f"failed to start serving: {exc}")
            self._shutdown(force=True)
            return ExitCode.FAILURE
        where = protocol.format_address(self.address)
        logger.info("browserd %s serving on %s (pid %d, %d browsers, state dir %s)", __version__, where,
                    os.getpid(), self.config.browsers, self.config.state_dir)
        readiness.ready(pid=os.getpid(), address=where, browsers=self.config.browsers,
                        state_dir=self.config.state_dir, log=self.config.log_path,
                        site_problems=self.registry.problems)
        systemd.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving on {where}")
        self._main_loop()
        self._shutdown(force=self._stop >= StopLevel.FORCE)
        return ExitCode.OK

    def _serve_own_pages(self) -> None:
        """The demo page (browserd/demo.py), on 127.0.0.1: the one loopback address
        the egress policy lets every job reach, so ``browserd demo`` works without
        opening loopback to every job."""
        from .demo import DemoServer

        self.pages = DemoServer().start()
        self.egress.policy.exceptions = frozenset({(self.pages.host, self.pages.port)})
        from .demo import MARKER

        self.pool.canary_url, self.pool.canary_marker = self.pages.url, MARKER
        self.pool.canary_interval = self.config.canary_interval

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        for sig in self.SIGNALS:
            signal.signal(sig, self._queue_signal)

    def _queue_signal(self, signum, frame) -> None:
        self._signals.append(signum)
        try:
            os.write(self._wake_w, b"s")
        except OSError:
            pass

    def _main_loop(self) -> None:
        next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        self._watchdog_every = systemd.watchdog_interval()
        while self._stop == StopLevel.RUNNING:
            self._watchdog_tick()
            timeout = max(0.0, next_housekeeping - time.monotonic())
            if self._watchdog_every:
                timeout = min(timeout, max(0.0, self._next_watchdog - time.monotonic()))
            readable, _, _ = select.select([self._wake_r], [], [], timeout)
            if readable:
                os.read(self._wake_r, 512)
            self._dispatch_signals()
            if time.monotonic() >= next_housekeeping:
                self.housekeeping()
                next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS

    def _watchdog_tick(self) -> None:
        """``WATCHDOG=1`` to systemd (``WatchdogSec=``) at half its interval, only while this
        loop runs and the daemon is healthy: the accept thread alive and a browser up. A
        daemon that stops being so is restarted by systemd once the interval passes."""
        if not self._watchdog_every or time.monotonic() < self._next_watchdog:
            return
        if self._healthy():
            systemd.notify("WATCHDOG=1")
            self._next_watchdog = time.monotonic() + self._watchdog_every
        else:
            self._next_watchdog = time.monotonic() + min(1.0, self._watchdog_every)

    def _healthy(self) -> bool:
        return (self.server is not None and self.server.accepting()
                and self.pool.snapshot()["total"] >= 1)

    def _dispatch_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            name = signal.Signals(signum).name.lower()
            getattr(self, f"handle_{name}")()

    def handle_sigterm(self, name: str = "SIGTERM") -> None:
        """A stop signal: the first drains (running and queued jobs get up to
        ``drain_timeout`` seconds), a second one stops at once."""
        if self._stop == StopLevel.RUNNING:
            self._stop = StopLevel.DRAIN
            logger.info("%s: draining (running jobs get up to %.0fs)", name, self.config.drain_timeout)
        else:
            self._stop = StopLevel.FORCE
            logger.warning("%s: second stop signal: stopping now", name)

    def handle_sigint(self) -> None:
        """Ctrl-C in the foreground: the same as SIGTERM, logged as SIGINT."""
        self.handle_sigterm("SIGINT")

    def handle_sigquit(self) -> None:
        """Stop at once, without draining."""
        logger.warning("SIGQUIT: stopping now")
        self._stop = StopLevel.FORCE

    def handle_sighup(self) -> None:
        """Reload the site classes (``browserd reload``). Browsers keep running; jobs in
        flight finish with the site objects they started with."""
        t0 = time.monotonic()
        registry = load_registry(self.config.site_modules, self.config.site_dirs, self.config.sites,
                                 previous=self.registry)
        self.registry = self.server.registry = registry
        logger.info("SIGHUP: site classes reloaded in %.3fs (generation %d, %d sites, %d problems)",
                    time.monotonic() - t0, registry.generation, len(registry.sites), len(registry.problems))

    def housekeeping(self) -> None:
        self._rounds += 1
        self.pool.check_idle(measure_rss=self._rounds % RSS_EVERY == 0)
        self.pool.start_canaries()
        records = [b.record() for b in self.pool.browsers()]
        if records != self._state_records:
            self._write_records(records)

    def metrics_text(self) -> str:
        """The Prometheus text of /metrics and of the ``metrics`` op."""
        from .metrics import render

        return render(self.status, self.stats.counters)

    def not_ready(self) -> str | None:
        """Why the daemon should get no new work (``/readyz`` answers 503), or None."""
        if self._stop != StopLevel.RUNNING:
            return "draining"
        if self.server is None:
            return "not serving yet"
        if self.pool.snapshot()["total"] < 1:
            return "no browser is up"
        return None

    def _write_state(self) -> None:
        """``state.json``: only what a client needs (0600, 0640 to ``group``); the browser
        records go to the private ``browsers.json``."""
        self._write_records([b.record() for b in self.pool.browsers()])
        # What ``restart`` starts again: kept after a stop (private: a Grid URL may hold a password).
        statedir.write_json(self.config.path_in_state(statedir.CONFIG_FILE), configmod.record(self.config))
        statedir.write_json(self.config.path_in_state(STATE_FILE), {
            "pid": os.getpid(), "version": __version__, "protocol": protocol.PROTOCOL_VERSION,
            "address": self.address, "started_at": self.stats.started,
        }, self.config.group_gid)

    def _write_records(self, records: list) -> None:
        """``browsers.json`` (0600, never shared): what a later start needs to end these
        browsers if this daemon dies; ports and session ids stay private."""
        self._state_records = records
        statedir.write_json(self.config.path_in_state(statedir.BROWSERS_FILE),
                            {"pid": os.getpid(), "browsers": records})

    def status(self) -> dict:
        pool = self.pool.snapshot()
        snap = self.stats.snapshot()
        return {
            "running": True,
            "pid": os.getpid(), "version": __version__, "protocol": protocol.PROTOCOL_VERSION,
            "address": protocol.format_address(self.address), "state_dir": self.config.state_dir,
            "config_file": self.config.path, "log": self.config.log_path,
            "uptime": round(time.time() - self.stats.started, 3),
            "user": daemon_user(),
            "sandbox": {"on": self.sandbox[0], "reason": self.sandbox[1]},
            "draining": self._stop != StopLevel.RUNNING,
            "browsers": pool, "jobs": snap["jobs"], "events": snap["events"],
            "latency": snap["latency"], "queue_wait": snap["queue_wait"], "reset": snap["reset"],
            "connections": self.server.connection_count() if self.server else 0,
            "sites": sorted(self.registry.names()), "site_problems": self.registry.problems,
            "sites_generation": self.registry.generation,
            "egress_tunnels": self.egress.tunnel_count() if self.egress is not None else 0,
            "demo_url": self.pages.url if self.pages else None,
            "metrics_url": self.metrics.url if self.metrics else None,
        }

    # -- stopping -----------------------------------------------------------------------------

    def _shutdown(self, force: bool) -> None:
        """The one shutdown path: drain (unless forced), close, quit browsers, clean state."""
        t0 = time.monotonic()
        systemd.notify("STOPPING=1")
        if self.server is not None:
            self.server.begin_drain()
        if self.pool is not None:  # jobs already accepted (queued ones too) are served
            if not force:
                deadline = time.monotonic() + self.config.drain_timeout
                while not self.pool.wait_for_jobs(0.1):
                    self._watchdog_tick()  # draining is serving too: keep systemd's watchdog fed
                    if self._wake_r is not None and select.select([self._wake_r], [], [], 0)[0]:
                        os.read(self._wake_r, 512)
                        self._dispatch_signals()
                    if self._stop >= StopLevel.FORCE or time.monotonic() > deadline:
                        logger.warning("drain: %d jobs still running; stopping them",
                                       self.pool.snapshot()["active_jobs"])
                        break
        # A clean stop leaves only the key and the log (``restart`` read config.json before
        # stopping; after a crash it stays, for the restart that cleans up).
        for name in (STATE_FILE, statedir.BROWSERS_FILE, statedir.CONFIG_FILE):
            try:
                os.unlink(self.config.path_in_state(name))
            except FileNotFoundError:
                pass
        if self.server is not None:
            self.server.close()
        if self.pool is not None:
            self.pool.close()
        if self.pages is not None:
            self.pages.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.egress is not None:
            self.egress.stop()
        shutil.rmtree(self.config.profiles_dir, ignore_errors=True)
        snap = self.stats.snapshot()["jobs"]
        logger.info("stopped in %.3fs after %d jobs served, %d failed", time.monotonic() - t0,
                    snap["served"], snap["failed"])
        self.pidfile.release()


class PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """The log file, (re)opened without following a symlink and created 0600 (0640 to
    ``gid``) whatever the umask; reopened after rotation like WatchedFileHandler."""

    def __init__(self, filename: str, gid: int | None = None):
        self.gid = gid
        super().__init__(filename, encoding="utf-8")

    def _open(self):
        fd = statedir.open_file(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.gid)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def secure_socket(path: str, gid: int | None) -> None:
    """The Unix socket we just bound (under umask 077): ours, and 0600, or 0660 to ``gid``
    (connecting needs write permission)."""
    import stat

    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(f"unix:{path} is not the socket we bound")
    if gid is not None:
        os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, 0o600 if gid is None else 0o660)


def close_logging() -> None:
    """Close every log handler. Called right before daemonizing: DaemonContext closes
    their file descriptors, and a handler closed later would close whatever file or
    socket has reused the number by then."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def configure_logging(config, mode: str) -> None:
    """``prepare``: the log file and warnings on the terminal (start-up in the CLI);
    ``daemon``: the log file only; ``foreground``: stderr (the journal), or the log
    file when one is configured."""
    close_logging()
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    if mode == "foreground" and not config.log_file:
        handlers.append(logging.StreamHandler())
    else:
        os.makedirs(os.path.dirname(config.log_path), exist_ok=True)
        handlers.append(PrivateFileHandler(config.log_path, gid=config.group_gid))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if mode == "prepare":
        console = logging.StreamHandler()
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter("browserd: %(levelname)s: %(message)s"))
        console.addFilter(lambda record: not getattr(record, "log_only", False))  # e.g. chromedriver output
        handlers.append(console)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(config.log_level)
    for noisy in ("urllib3", "selenium"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
