"""One browser: a chromedriver process, its Chromium, and the WebDriver session on it.

chromedriver is started by us, not by Selenium's ``Service``: with ``--port=0`` it picks
its own port and prints it (no check-then-use race, STYLE trap 8); it runs in a new
session so that it and every Chromium process it starts share one process group; its
output goes to a file, so no pipe of ours can go stale across the daemon's fork.
chromedriver and Chromium run in a private network namespace (:mod:`browserd.netns`):
their unauthenticated control ports (WebDriver, DevTools) exist for no other process,
and the browser's only way out is the daemon's egress proxy (:mod:`browserd.egress`).
Each browser gets a private working directory (profile, XDG config, crash database):
every process of the browser, crashpad's double-forked handler included, is found by
that recorded group and path, never by process name. Liveness is read from /proc, since
after daemonizing the browsers started before the fork are no longer our children.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import psutil
from selenium.webdriver.chromium.remote_connection import ChromiumRemoteConnection
from selenium.webdriver.remote.client_config import ClientConfig

from ..netns import Namespace, launcher_argv
from .hygiene import hygiene_of
from .interrupt import interrupt_page_loads
from .navigation import enable_network
from .launch import LaunchSpec, DialogDriver, NamespaceConnection, chrome_options
from .processes import pid_alive, kill_group_and_strays, processes_of, renderers_of, total_rss
from .reset import deny_downloads, navigated_urls
from .startlog import keep_start_output, log_tail

logger = logging.getLogger(__name__)

_PORT_LINE = re.compile(rb"started successfully on port (\d+)")


class BrowserStartError(RuntimeError):
    """A browser could not be started; the message is one line and says why."""



class _PortTaken(Exception):
    """chromedriver could not bind the port it picked in both address families."""


PORT_ATTEMPTS = 5
#: The longest $TMPDIR Chromium is started with (its socket path adds ~47 bytes to it).
_TMPDIR_MAX = 60



class Browser:
    """A started browser. Only the thread holding its checkout may use ``driver``."""

    def __init__(self, browser_id: str, spec: LaunchSpec, workdir: str | None, egress=None):
        self.id = browser_id
        self.egress = egress  # the pool's EgressProxy: serves this browser's only way out
        self.spec = spec
        self.workdir = workdir
        self.driver: DialogDriver | None = None
        self.popen: subprocess.Popen | None = None
        self.driver_pid = 0
        self.driver_create_time = 0.0
        self.chromium_pid = 0
        self.chromedriver_pid = 0  # chromedriver itself (driver_pid is its namespace launcher)
        self.chromium_create_time = 0.0
        self.port = 0
        self.namespace: Namespace | None = None      # local browsers: the private netns
        self.spawned_by = os.getpid()
        self.started_at = 0.0
        self.start_seconds = 0.0
        self.last_used = time.monotonic()
        self.jobs = 0
        # What the pool knows of the browser's state across jobs (used by the job's thread
        # and the pool under its lock, never by two jobs at once; its lifecycle state is
        # the pool's, browserd.pool.states):
        self.owner: str | None = None     # the session site whose cookies/storage it carries
        self.session_urls: set = set()    # URLs its owner's jobs touched (wiped on release)
        self.prepared: set = set()        # (site, generation) whose setup_browser ran here
        self.blocked: tuple = ()          # URL patterns blocked now (Network.setBlockedURLs)
        self.dressed_by: str | None = None  # site whose hooks may have changed the tab
        self.cache_of: str | None = None  # share_cache site whose HTTP cache it carries
        self.hygiene = None               # its reset (browserd.browser.hygiene), made on first use
        self.size_watch = None            # its document size watch (browserd.browser.docsize), ditto
        self.killed = False
        self.tab_crashed = False          # its renderers were killed (kill_renderers): a fresh tab first

    # -- start --------------------------------------------------------------------------

    def start(self) -> "Browser":
        """Start chromedriver and a session; on any failure stop what was started, raise."""
        t0 = time.monotonic()
        try:
            egress_port = 0
            if self.spec.grid_url:
                executor = self.spec.grid_url
            else:
                os.makedirs(self.workdir, mode=0o700, exist_ok=True)
                executor = f"http://127.0.0.1:{self._start_chromedriver()}"
                if self.namespace is not None:
                    listener = self.namespace.listener()
                    egress_port = listener.getsockname()[1]
                    if self.egress is not None:
                        self.egress.add(self.id, listener)  # served from now on, warm-up included
                    else:
                        listener.close()  # no way out at all
            config = ClientConfig(remote_server_addr=executor, keep_alive=True,
                                  timeout=self.spec.command_timeout)
            kwargs = dict(remote_server_addr=executor, vendor_prefix="goog", browser_name="chrome",
                          ignore_proxy=True, client_config=config)
            connection = (NamespaceConnection(self.namespace, **kwargs) if self.namespace is not None
                          else ChromiumRemoteConnection(**kwargs))
            profile = os.path.join(self.workdir, "profile") if self.workdir else None
            self.driver = DialogDriver(command_executor=connection,
                                  options=chrome_options(self.spec, profile, egress_port))
            deny_downloads(self.driver)
            enable_network(self.driver)  # bodies up to the reply limit are kept
            self._find_chromium()
            # A real navigation before the browser counts as ready: it proves the browser
            # answers, and the first one after launch is the slow one (0.3-5 s here).
            self.driver.get("data:text/html,<title>warm</title>")
            self.driver.get("about:blank")  # committed when get returns: the reset need not wait
            # The first job starts as every later one does: after a reset (one blank tab,
            # its history and window.name cleared; the warm-up left 3 history entries).
            hygiene_of(self).reset(clear_storage=True, clear_cache=False)
            navigated_urls(self.driver)  # start the first job with an empty log
        except BaseException as exc:
            self.kill()
            keep_start_output(self.id, self.workdir)
            self.cleanup_workdir()
            if isinstance(exc, BrowserStartError):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BrowserStartError(f"browser {self.id} failed to start: {first}") from exc
        self.started_at = time.time()
        self.start_seconds = time.monotonic() - t0
        return self

    def _start_chromedriver(self) -> int:
        """chromedriver picks its port (--port=0) but then binds that number in the other
        address family too, which another process may hold ("IPv4 port not available"):
        a fresh try gets a fresh port."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                return self._launch_chromedriver()
            except _PortTaken as exc:
                logger.info("browser=%s chromedriver port clash (%s); try %d of %d",
                            self.id, exc, attempt, PORT_ATTEMPTS)
                self._reap()
        raise BrowserStartError(f"chromedriver found no free port in {PORT_ATTEMPTS} tries")

    def _launch_chromedriver(self) -> int:
        out_path = os.path.join(self.workdir, "chromedriver.out")  # banner with the port
        log_path = os.path.join(self.workdir, "chromedriver.log")  # on the command line: identity
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = os.path.join(self.workdir, "xdg-config")
        env["XDG_CACHE_HOME"] = os.path.join(self.workdir, "xdg-cache")
        if len(env.get("TMPDIR", "")) > _TMPDIR_MAX:
            # Chromium puts its singleton socket in $TMPDIR/.org.chromium.Chromium.XXXXXX/;
            # past 107 bytes a Unix socket cannot be bound and the browser exits at start.
            env["TMPDIR"] = "/tmp"
        self.close_namespace()
        program = [self.spec.chromedriver, "--port=0", f"--log-path={log_path}", "--log-level=WARNING"]
        pass_fds = ()
        if self.spec.isolate_network:
            self.namespace, launcher_end = Namespace.pair()
            program, pass_fds = launcher_argv(launcher_end.fileno(), program), (launcher_end.fileno(),)
        try:
            with open(out_path, "wb") as log:
                self.popen = subprocess.Popen(
                    program, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, close_fds=True, pass_fds=pass_fds, env=env, cwd=self.workdir,
                )
        finally:
            if pass_fds:
                launcher_end.close()
        self.driver_pid = self.popen.pid  # the launcher: leads the group, exits with chromedriver
        self.driver_create_time = psutil.Process(self.driver_pid).create_time()
        deadline = time.monotonic() + self.spec.start_timeout
        delay = 0.005
        while time.monotonic() < deadline:
            with open(out_path, "rb") as f:
                match = _PORT_LINE.search(f.read())
            if match:
                self.port = int(match.group(1))
                return self.port
            if self.popen.poll() is not None:
                if b"port not available" in open(out_path, "rb").read():
                    raise _PortTaken(log_tail(out_path))
                raise BrowserStartError(
                    f"chromedriver exited with status {self.popen.returncode}: {log_tail(out_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        raise BrowserStartError(f"chromedriver did not report its port within {self.spec.start_timeout:.0f}s")

    def _find_chromium(self) -> None:
        if not self.driver_pid:
            return
        marker = f"--user-data-dir={self.workdir}"
        for child in psutil.Process(self.driver_pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
                if self.namespace is not None and cmdline[:1] == [self.spec.chromedriver]:
                    self.chromedriver_pid = child.pid  # the launcher's child
                elif marker in " ".join(cmdline) and not any(a.startswith("--type=") for a in cmdline):
                    # the browser process itself, not one of its helpers (renderer, zygote, ...)
                    self.chromium_pid, self.chromium_create_time = child.pid, child.create_time()
            except psutil.NoSuchProcess:
                continue

    # -- state ----------------------------------------------------------------------------

    @property
    def pgid(self) -> int:
        """The process group of every process of the browser (led by the namespace launcher)."""
        return self.driver_pid  # the namespace launcher leads its own session and group

    def record(self) -> dict:
        """What a later ``start`` needs to end this browser if our daemon dies."""
        return {"id": self.id, "driver_pid": self.driver_pid, "pgid": self.pgid,
                "chromedriver_pid": self.chromedriver_pid or self.driver_pid,
                "chromium_pid": self.chromium_pid, "workdir": self.workdir,
                "create_time": self.driver_create_time, "port": self.port,
                "grid_url": self.spec.grid_url, "session_id": self.session_id}

    @property
    def session_id(self) -> str | None:
        """The WebDriver session id (None before the session exists)."""
        return self.driver.session_id if self.driver is not None else None

    def alive(self) -> bool:
        """Cheap /proc check that chromedriver and Chromium are still running."""
        if self.killed or self.driver is None:
            return False
        if self.spec.grid_url:
            return True  # remote: only a command can tell (see healthy())
        self._reap()
        return pid_alive(self.driver_pid, self.driver_create_time) and (
            not self.chromium_pid or pid_alive(self.chromium_pid, self.chromium_create_time)
        )

    def healthy(self) -> bool:
        """A round trip through chromedriver to Chromium."""
        if not self.alive():
            return False
        try:
            self.driver.execute_script("return 1")
            return True
        except Exception:
            return False

    @property
    def debugger_address(self) -> str | None:
        """Chromium's DevTools "host:port" as chromedriver reports it (None before the session)."""
        caps = self.driver.capabilities if self.driver is not None else {}
        return (caps.get("goog:chromeOptions") or {}).get("debuggerAddress")

    def interrupt(self, timeout: float = 1.0) -> bool:
        """Stop the page loading, from any thread (:func:`.interrupt.interrupt_page_loads`):
        the blocked ``get`` then returns and the browser stays usable. False if it failed."""
        return interrupt_page_loads(self, timeout)

    def kill_renderers(self) -> int:
        """SIGKILL every renderer process of this browser, from any thread, without any
        command to them: the way to stop a page that never yields (``while(true){}``),
        which no DevTools or WebDriver command reaches (``Page.stopLoading`` answers but the
        script spins on; ``Page.crash`` waits on the renderer). A browser serves one job at
        a time, so its renderers are that job's pages and a spare. chromedriver then
        answers the blocked command at once ("tab crashed") and the browser lives on;
        ``tab_crashed`` tells the job to move to a fresh tab (:func:`.reset.recover_tab`).
        Returns how many were signalled (0 on a Grid: not our processes)."""
        if self.spec.grid_url or self.killed:
            return 0
        killed = 0
        for proc in renderers_of(self.chromium_pid, self.chromium_create_time):
            try:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            except psutil.NoSuchProcess:
                continue
        if killed:
            self.tab_crashed = True
        return killed

    def devtools_socket(self, port: int, timeout: float) -> socket.socket:
        """A connection to Chromium's DevTools ``port``: inside the browser's namespace
        (or plain loopback for a browser without one). Raises ``ConnectionError`` once the
        namespace is closed, ``OSError`` if the connect fails."""
        namespace = self.namespace
        if namespace is not None:
            return namespace.connect(port, timeout)
        if self.spec.isolate_network:
            raise ConnectionError("the browser's namespace is closed")
        return socket.create_connection(("127.0.0.1", port), timeout)

    def rss(self) -> int:
        """Resident memory of chromedriver and every process under it, in bytes."""
        if not self.driver_pid:
            return 0
        try:
            root = psutil.Process(self.driver_pid)
            return total_rss([root] + root.children(recursive=True))
        except psutil.NoSuchProcess:
            return 0

    def held_fds(self) -> list[int]:
        """Descriptors this browser needs across the daemon's fork: the namespace's
        control socket (closing it ends the browser)."""
        return [self.namespace.fileno()] if self.namespace is not None else []

    def close_namespace(self) -> None:
        """Close our end of the namespace's control socket (the launcher then ends the
        browser's processes) and the browser's egress listener. Idempotent."""
        if self.namespace is not None:
            self.namespace.close()
            self.namespace = None
        if self.egress is not None:
            self.egress.remove(self.id)

    def drop_http_connections(self) -> None:
        """Close Selenium's keep-alive sockets to chromedriver and the reset's DevTools
        socket (the next use opens new ones). Called before the daemon fork:
        DaemonContext closes them and a later socket could reuse their numbers."""
        if self.driver is not None:
            self.driver.command_executor.close()
        if self.hygiene is not None:
            self.hygiene.close()
        if self.size_watch is not None:
            self.size_watch.close()

    # -- end --------------------------------------------------------------------------------

    def _reap(self) -> None:
        """Collect chromedriver's exit status if it is our own child (no zombie)."""
        if self.popen is not None and self.spawned_by == os.getpid():
            self.popen.poll()

    def kill(self) -> None:
        """SIGKILL every process of this browser at once. Safe from any thread."""
        self.killed = True
        if self.hygiene is not None:  # its DevTools socket dies with the browser
            self.hygiene.close()
        if self.size_watch is not None:
            self.size_watch.close()
        if self.spec.grid_url:
            if self.session_id:  # the node quits the browser; a blocked command fails
                from ..grid import delete_session

                delete_session(self.spec.grid_url, self.session_id)
            return
        if not self.driver_pid:
            self.close_namespace()
            return
        kill_group_and_strays(self.pgid, processes_of(self.pgid, self.workdir), signal.SIGKILL)
        self.close_namespace()
        self._reap()

    def quit(self, timeout: float = 5.0) -> None:
        """Polite quit, then TERM to the group, a bounded wait, then KILL; each step logged."""
        t0 = time.monotonic()
        if self.size_watch is not None:
            self.size_watch.close()
        if self.driver is not None and not self.killed:
            try:
                self.driver.quit()
            except Exception as exc:
                logger.info("browser=%s quit failed: %s", self.id, str(exc).splitlines()[0] if str(exc) else exc)
        if self.driver is not None:
            # quit() is skipped for a killed browser: its keep-alive sockets must still go.
            self.driver.command_executor.close()
        if self.spec.grid_url:
            if not self.killed and self.session_id:
                from ..grid import delete_session  # in case quit() failed half-way

                delete_session(self.spec.grid_url, self.session_id, timeout=2)
            self.killed = True
            return
        if self.driver_pid:
            kill_group_and_strays(self.pgid, processes_of(self.pgid, self.workdir), signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self._reap()
                if not processes_of(self.pgid, self.workdir):
                    break
                time.sleep(0.05)
            else:
                logger.warning("browser=%s did not exit within %.1fs of SIGTERM; SIGKILL", self.id, timeout)
            self.kill()
            if self.popen is not None and self.spawned_by == os.getpid():
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.error("browser=%s chromedriver pid %d not reaped", self.id, self.driver_pid)
        self.close_namespace()
        self.cleanup_workdir()
        logger.debug("browser=%s stopped in %.3fs", self.id, time.monotonic() - t0)

    def cleanup_workdir(self) -> None:
        """Delete the browser's working directory (profile, logs, downloads); never raises."""
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

