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
import logging
import os
import shutil
import time

from browserd_client import protocol
from browserd_client.state import AUTHKEY_FILE, PID_FILE

from .. import __version__
from ..browser import BrowserStartError, LaunchSpec
from ..egress import EgressProxy
from ..netpolicy import DestinationPolicy
from ..pool import Pool
from ..proxies import load_pools
from ..server import Requests, Server, bind, secure_socket
from ..sites import load_registry
from ..stats import Stats
from . import statedir, systemd
from .daemonize import Readiness
from .errors import DependencyMissing, ExitCode, StartError, StateDirError
from .launch import chromium_sandbox, launch_spec, raise_fd_limit, start_failure
from .pidfile import PidFile
from .signals import SignalQueue
from .stale import clean_stale
from .statefiles import StateFiles
from .status import build_status
from .systemd import WatchdogFeed

logger = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 1.0
RSS_EVERY = 5  # housekeeping rounds between RSS measurements of idle browsers


class StopLevel(enum.IntEnum):
    """How far a stop has gone: the first SIGTERM/SIGINT drains, a second one (or SIGQUIT)
    forces (rq's warm then cold shutdown). Ordered: ``level >= StopLevel.FORCE``."""

    RUNNING = 0
    DRAIN = 1
    FORCE = 2


class Arbiter:
    """The daemon process: :meth:`prepare` (foreground, may fail), :meth:`serve` (after
    daemonizing: the main loop), one shutdown path. Its thread is the process's main
    thread: signal handlers only queue (:class:`SignalQueue`), the loop dispatches to
    ``handle_<signame>``. :meth:`status`, :meth:`metrics_text` and :meth:`not_ready` may
    be called from any thread (connection threads, the metrics server)."""

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
        self.requests: Requests | None = None
        self.listener = None
        self.address: dict | None = None
        self.registry = None
        self.authkey = b""
        self.started_monotonic = time.monotonic()
        self.ready_seconds: float | None = None
        self.sandbox: tuple[bool, str] = (False, "not decided yet")
        self.signals = SignalQueue()
        self.state_files = StateFiles(config)
        self.watchdog = WatchdogFeed(self._healthy)
        self._stop = StopLevel.RUNNING
        self._rounds = 0

    # -- before daemonizing ------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything that can fail, in the foreground, as a flat list of named steps (like
        python-daemon's ``DaemonContext.open``). On failure whatever was started is stopped
        and the error re-raised: a :class:`HaltServer` with its exit status (StateDirError
        78, AlreadyRunning 4, DependencyMissing 69, StartError 1, ConfigError 78)."""
        t0 = time.monotonic()
        os.umask(0o077)  # whatever we create is ours alone unless a mode says otherwise
        self._lock_state_dir()
        try:
            clean_stale(self.config, self.pidfile.stale_pid)
            raise_fd_limit()
            self.sandbox = chromium_sandbox(self.config)
            spec = launch_spec(self.config, sandbox=self.sandbox[0])
            self._check_grid(spec)
            self._load_authkey()
            self.registry = load_registry(self.config.site_modules, self.config.site_dirs, self.config.sites)
            self.proxy_pools = load_pools(dict(self.config.proxies), self.config.path or "config")
            self._bind()
            self._bind_metrics()
            os.makedirs(self.config.profiles_dir, mode=0o700, exist_ok=True)
            self._build_pool(spec)
            self._start_browsers()
            self._warn_privileges(spec)
            self._quiesce_for_fork()
        except BaseException:
            self._abort_prepare()
            raise
        self.ready_seconds = time.monotonic() - t0

    def _lock_state_dir(self) -> None:
        """Create or verify the state dir, then take the pidfile lock."""
        statedir.prepare(self.config.state_dir, self.config.group_gid)  # raises StateDirError (78)
        try:
            self.pidfile.acquire()  # raises AlreadyRunning (4)
        except OSError as exc:  # e.g. a directory where the pidfile goes
            raise StateDirError(f"cannot use pidfile {self.pidfile.path}: {exc.strerror}") from None

    def _check_grid(self, spec: LaunchSpec) -> None:
        """With a Grid: it must have room for ``browsers`` sessions (else 69)."""
        if not spec.grid_url:
            return
        from ..grid import GridError, check_capacity

        try:
            check_capacity(spec.grid_url, self.config.browsers)
        except GridError as exc:
            raise DependencyMissing(str(exc)) from None

    def _load_authkey(self) -> None:
        try:
            self.authkey = statedir.load_authkey(self.config.path_in_state(AUTHKEY_FILE), self.config.group_gid)
        except OSError as exc:
            raise StateDirError(f"cannot use {exc.filename or AUTHKEY_FILE}: {exc.strerror}") from None

    def _bind(self) -> None:
        """The listening socket (a Unix socket is made private to us or our group)."""
        try:
            self.listener, self.address = bind(self.config)
            if self.address.get("family") == "AF_UNIX":
                secure_socket(self.address["path"], self.config.group_gid)
        except OSError as exc:
            raise StartError(str(exc)) from None

    def _bind_metrics(self) -> None:
        """The HTTP server of /metrics, /healthz, /readyz, when ``metrics_listen`` is set."""
        if not self.config.metrics_listen:
            return
        from ..metrics import MetricsServer

        try:
            self.metrics = MetricsServer(self.config.metrics_listen, self)
        except OSError as exc:
            raise StartError(f"metrics_listen {self.config.metrics_listen}: {exc.strerror or exc}") from None

    def _build_pool(self, spec: LaunchSpec) -> None:
        """The egress proxy (local browsers only: a Grid's browsers are not ours to
        steer) and the pool, no browser started yet."""
        config = self.config
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

    def _start_browsers(self) -> None:
        """All ``browsers`` in parallel; the egress proxy serves them while they start."""
        if self.egress is not None:  # suspended again for the fork
            self.egress.start()
        try:
            seconds = self.pool.start_browsers()
        except BrowserStartError as exc:
            raise StartError(f"{exc} (chromedriver and Chromium output: {self.config.log_path})",
                             start_failure(exc)) from None
        logger.info("%d browsers ready in %.3fs", self.config.browsers, seconds)

    def _quiesce_for_fork(self) -> None:
        """Selenium's keep-alive sockets would not survive DaemonContext: drop them now;
        and no thread may run across the fork (STYLE trap 5)."""
        self.pool.drop_http_connections()
        if self.egress is not None:
            self.egress.suspend()

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
            self.signals.install()
            if self.egress is not None:
                self._serve_own_pages()
                self.egress.start()
            self.pool.start_threads()
            self.requests = Requests(self.config, self.pool, self.registry, self.stats, self.status,
                                     self.metrics_text, self.proxy_pools)
            self.server = Server(self.config, self.listener, self.address, self.authkey, self.requests)
            self.server.start()
            if self.metrics is not None:
                self.metrics.start()
            self.state_files.write(self.address, self.stats.started, [b.record() for b in self.pool.browsers()])
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
        from ..demo import MARKER, DemoServer

        self.pages = DemoServer().start()
        self.egress.policy.exceptions = frozenset({(self.pages.host, self.pages.port)})
        self.pool.canary_url, self.pool.canary_marker = self.pages.url, MARKER
        self.pool.canary_interval = self.config.canary_interval

    def _main_loop(self) -> None:
        next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        self.watchdog.arm()
        while self._stop == StopLevel.RUNNING:
            self.watchdog.tick()
            timeout = max(0.0, next_housekeeping - time.monotonic())
            due = self.watchdog.seconds_to_next()
            self._dispatch(self.signals.wait(timeout if due is None else min(timeout, due)))
            if time.monotonic() >= next_housekeeping:
                self.housekeeping()
                next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS

    def _healthy(self) -> bool:
        return (self.server is not None and self.server.accepting()
                and self.pool.snapshot()["total"] >= 1)

    def _dispatch(self, signals: list) -> None:
        for sig in signals:
            getattr(self, f"handle_{sig.name.lower()}")()

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
        self.registry = self.requests.registry = registry
        logger.info("SIGHUP: site classes reloaded in %.3fs (generation %d, %d sites, %d problems)",
                    time.monotonic() - t0, registry.generation, len(registry.sites), len(registry.problems))

    def housekeeping(self) -> None:
        """Once a second on the Arbiter's thread: idle browsers checked (their RSS every
        ``RSS_EVERY`` rounds), canaries started, ``browsers.json`` kept current."""
        self._rounds += 1
        self.pool.check_idle(measure_rss=self._rounds % RSS_EVERY == 0)
        self.pool.start_canaries()
        self.state_files.update_records([b.record() for b in self.pool.browsers()])

    def metrics_text(self) -> str:
        """The Prometheus text of /metrics and of the ``metrics`` op."""
        from ..metrics import render

        return render(self.status, self.stats.counters)

    def not_ready(self) -> str | None:
        """Why the daemon should get no new work (``/readyz`` answers 503), or None."""
        if self.draining:
            return "draining"
        if self.server is None:
            return "not serving yet"
        if self.pool.snapshot()["total"] < 1:
            return "no browser is up"
        return None

    @property
    def draining(self) -> bool:
        """True once a stop signal arrived."""
        return self._stop != StopLevel.RUNNING

    def status(self) -> dict:
        """The ``status`` reply (see :func:`browserd.daemon.status.build_status`)."""
        return build_status(self)

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
                    self.watchdog.tick()  # draining is serving too: keep systemd's watchdog fed
                    self._dispatch(self.signals.wait(0))
                    if self._stop >= StopLevel.FORCE or time.monotonic() > deadline:
                        logger.warning("drain: %d jobs still running; stopping them",
                                       self.pool.snapshot()["active_jobs"])
                        break
        self.state_files.remove()
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
