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

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import http.client

import psutil
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chromium.remote_connection import ChromiumRemoteConnection
from selenium.webdriver.remote.client_config import ClientConfig

from .hygiene import hygiene_of, origins_of
from .netns import Namespace, NamespacePoolManager, launcher_argv

logger = logging.getLogger(__name__)

HEADLESS_ARGS = (
    "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--mute-audio", "--password-store=basic",
    # The back-forward cache keeps the last job's page alive in memory (state that should
    # not outlive its job) and doubles the cost of the reset's blank navigation (78 -> 36 ms).
    # RenderDocument (a new frame host for every navigation) and ProactivelySwapBrowsingInstance
    # (a new browsing instance for every browser-initiated cross-site navigation) only serve
    # that cache; without them a fetch + reset of a small page takes 63 ms instead of 88 ms of
    # wall time and 89 instead of 121 ms of CPU (one warm browser, medians of 30, 2 cores).
    "--disable-features=BackForwardCache,RenderDocument,ProactivelySwapBrowsingInstance",
)
_PORT_LINE = re.compile(rb"started successfully on port (\d+)")


class BrowserStartError(RuntimeError):
    """A browser could not be started; the message is one line and says why."""


class _NamespaceConnection(ChromiumRemoteConnection):
    """Selenium's connection to a chromedriver inside a browser's network namespace."""

    namespace: Namespace

    def __init__(self, namespace: Namespace, **kwargs):
        self.namespace = namespace
        super().__init__(**kwargs)

    def _get_connection_manager(self):
        return NamespacePoolManager(self.namespace, timeout=self._client_config.timeout)


class _PortTaken(Exception):
    """chromedriver could not bind the port it picked in both address families."""


PORT_ATTEMPTS = 5
#: The longest $TMPDIR Chromium is started with (its socket path adds ~47 bytes to it).
_TMPDIR_MAX = 60


@dataclass(frozen=True)
class LaunchSpec:
    """What every browser of a pool is started with (derived once from the Config)."""

    chromium: str
    chromedriver: str | None       # None for a Grid
    grid_url: str | None
    extra_args: tuple = ()
    command_timeout: float = 90.0  # HTTP timeout of every WebDriver command
    #: Run chromedriver and Chromium in a private network namespace (the daemon always
    #: does). False only for a plain in-process Selenium browser: the benchmark's baseline.
    isolate_network: bool = True
    start_timeout: float = 60.0
    sandbox: bool = False          # Chromium's own sandbox (sandbox.py); else --no-sandbox


def chrome_options(spec: LaunchSpec, profile_dir: str | None, egress_port: int = 0) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    if spec.chromium:
        options.binary_location = spec.chromium
    for arg in HEADLESS_ARGS + (() if spec.sandbox else ("--no-sandbox",)) + tuple(spec.extra_args):
        options.add_argument(arg)
    if profile_dir:
        options.add_argument(f"--user-data-dir={profile_dir}")
    if egress_port:
        # Every connection, loopback included (<-loopback> drops Chromium's implicit
        # bypass), goes through the daemon's egress proxy: the namespace has no other exit.
        options.add_argument(f"--proxy-server=socks5://127.0.0.1:{egress_port}")
        options.add_argument("--proxy-bypass-list=<-loopback>")
    options.page_load_strategy = "normal"
    options.set_capability("webSocketUrl", False)
    # chromedriver records the page's frame navigations, so that a reset knows every
    # origin a job's documents ran in (navigated_urls()), and the network events of the
    # main document, its status, headers and net error (browserd.navigation). Measured
    # with one warm browser, /static fetch + blank + log reads, medians of 30: 255/179 ms
    # without network events, 165/167 ms with (within the noise of 2 shared cores).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": True})
    # Dialogs are left open for _Driver.execute to handle by the job's policy.
    options.set_capability("unhandledPromptBehavior", "ignore")
    # Never ~/Downloads (STYLE trap 17): downloads go to the browser's own directory until
    # a job sets its own (and are denied between jobs); a PDF is a download, not a viewer.
    if profile_dir:
        options.add_experimental_option("prefs", {
            "download.default_directory": os.path.join(os.path.dirname(profile_dir), "downloads"),
            "download.prompt_for_download": False,
            "plugins.always_open_pdf_externally": True,
        })
    return options


#: What a dialog gets unless the site says otherwise (``dialogs`` policy): "accept" or "dismiss".
DEFAULT_DIALOGS = {"alert": "accept", "confirm": "dismiss", "prompt": "dismiss", "beforeunload": "accept"}
#: Dialogs one WebDriver command may meet before it gives up handling them.
MAX_DIALOGS_PER_COMMAND = 50


class _Driver(webdriver.Remote):
    """A WebDriver whose commands never fail on a JavaScript dialog (STYLE trap 20): an
    open dialog is accepted or dismissed by ``dialog_policy`` (type -> "accept" or
    "dismiss"), its type and text kept in ``netlog`` (the job's performance-log events),
    and the command run again."""

    dialog_policy: dict = DEFAULT_DIALOGS
    netlog = None

    def execute(self, driver_command, params=None):
        from selenium.common.exceptions import UnexpectedAlertPresentException

        for _ in range(MAX_DIALOGS_PER_COMMAND):
            try:
                return super().execute(driver_command, params)
            except UnexpectedAlertPresentException:
                self._handle_dialog()
        return super().execute(driver_command, params)

    def _handle_dialog(self) -> None:
        from selenium.common.exceptions import NoAlertPresentException
        from selenium.webdriver.remote.command import Command

        from .navigation import NetLog

        if self.netlog is None:
            self.netlog = NetLog()
        self.netlog.pull(self)  # the dialog's type is in Page.javascriptDialogOpening
        dialogs = self.netlog.dialogs()
        kind = dialogs[-1]["type"] if dialogs else "alert"
        action = self.dialog_policy.get(kind, DEFAULT_DIALOGS.get(kind, "dismiss"))
        command = Command.W3C_ACCEPT_ALERT if action == "accept" else Command.W3C_DISMISS_ALERT
        try:
            super().execute(command)
        except NoAlertPresentException:
            pass


def _alive(pid: int, create_time: float) -> bool:
    """True if ``pid`` is the same process we recorded and it is not a zombie."""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def processes_of(pgid: int, workdir: str) -> list[psutil.Process]:
    """Live processes of one browser, found by its private working directory: on the
    command line (chromedriver's --log-path, Chromium's --user-data-dir, crashpad's
    database) or in the environment every process of the browser inherits. ``pgid`` is
    accepted for symmetry with the records; identity is the directory, never the name.
    Zombies are left out: they are already dead."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if workdir in " ".join(proc.cmdline()) or workdir in proc.environ().get("XDG_CONFIG_HOME", ""):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError):
            continue
    return found


def total_rss(procs) -> int:
    """Summed resident memory of ``procs`` in bytes, skipping any that exited meanwhile."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def kill_group_and_strays(pgid: int, procs: list[psutil.Process], sig: int) -> None:
    """Signal the group (atomic for its members, even ones forked a moment ago) when a
    process found to be ours is in it, so a reused group number is never signalled;
    then each process found, for those that left the group."""
    for proc in procs:
        try:
            if os.getpgid(proc.pid) == pgid:
                os.killpg(pgid, sig)
                break
        except (ProcessLookupError, PermissionError):
            continue
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def kill_recorded(record: dict, sig: int = signal.SIGKILL) -> int:
    """Signal every live process of a browser described by :meth:`Browser.record`.
    Used for a dead daemon's leftovers; returns how many processes were signalled."""
    if record.get("grid_url") and record.get("session_id"):
        from .grid import delete_session

        return int(delete_session(record["grid_url"], record["session_id"]))
    if not record.get("workdir"):
        return 0
    procs = processes_of(record.get("pgid", -1), record["workdir"])
    kill_group_and_strays(record.get("pgid", -1), procs, sig)
    return len(procs)


class Browser:
    """A started browser. Only the thread holding its checkout may use ``driver``."""

    def __init__(self, browser_id: str, spec: LaunchSpec, workdir: str | None, egress=None):
        self.id = browser_id
        self.egress = egress  # the pool's EgressProxy: serves this browser's only way out
        self.spec = spec
        self.workdir = workdir
        self.driver: webdriver.Remote | None = None
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
        # the pool's, browserd.pool_states):
        self.owner: str | None = None     # the session site whose cookies/storage it carries
        self.session_urls: set = set()    # URLs its owner's jobs touched (wiped on release)
        self.prepared: set = set()        # (site, generation) whose setup_browser ran here
        self.blocked: tuple = ()          # URL patterns blocked now (Network.setBlockedURLs)
        self.dressed_by: str | None = None  # site whose hooks may have changed the tab
        self.cache_of: str | None = None  # share_cache site whose HTTP cache it carries
        self.hygiene = None               # its reset (browserd.hygiene), made on first use
        self.killed = False

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
            connection = (_NamespaceConnection(self.namespace, **kwargs) if self.namespace is not None
                          else ChromiumRemoteConnection(**kwargs))
            profile = os.path.join(self.workdir, "profile") if self.workdir else None
            self.driver = _Driver(command_executor=connection,
                                  options=chrome_options(self.spec, profile, egress_port))
            deny_downloads(self.driver)
            self._find_chromium()
            # A real navigation before the browser counts as ready: it proves the browser
            # answers, and the first one after launch is the slow one (0.3-5 s here).
            self.driver.get("data:text/html,<title>warm</title>")
            self.driver.get("about:blank")
            navigated_urls(self.driver)  # start the first job with an empty log
        except BaseException as exc:
            self.kill()
            self.keep_start_output()
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
                    raise _PortTaken(self._log_tail(out_path))
                raise BrowserStartError(
                    f"chromedriver exited with status {self.popen.returncode}: {self._log_tail(out_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        raise BrowserStartError(f"chromedriver did not report its port within {self.spec.start_timeout:.0f}s")

    @staticmethod
    def _log_tail(path: str) -> str:
        try:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
            return lines[-1] if lines else "(no output)"
        except OSError:
            return "(no log)"

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
        return self.driver.session_id if self.driver is not None else None

    def alive(self) -> bool:
        """Cheap /proc check that chromedriver and Chromium are still running."""
        if self.killed or self.driver is None:
            return False
        if self.spec.grid_url:
            return True  # remote: only a command can tell (see healthy())
        self._reap()
        return _alive(self.driver_pid, self.driver_create_time) and (
            not self.chromium_pid or _alive(self.chromium_pid, self.chromium_create_time)
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
        caps = self.driver.capabilities if self.driver is not None else {}
        return (caps.get("goog:chromeOptions") or {}).get("debuggerAddress")

    def interrupt(self, timeout: float = 1.0) -> bool:
        """Stop the page loading, from any thread: ``Page.stopLoading`` over the browser's
        own DevTools socket, a connection separate from chromedriver's (which serializes
        commands, so a second WebDriver call would only queue behind the blocked one).
        The blocked ``get`` then returns and the browser stays usable. False if it failed."""
        if self.killed or self.driver is None:
            return False
        import websocket  # websocket-client: a dependency of Selenium

        if self.spec.grid_url:
            return self._interrupt_through_grid(websocket, timeout)
        address = self.debugger_address
        if not address:
            return False
        port = int(address.rsplit(":", 1)[1])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.sock = self._devtools_socket(port, timeout)
            try:
                conn.request("GET", "/json/list")
                targets = json.loads(conn.getresponse().read())
            finally:
                conn.close()
            for target in targets:
                if target.get("type") != "page" or "webSocketDebuggerUrl" not in target:
                    continue
                ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout,
                                                 suppress_origin=True,
                                                 socket=self._devtools_socket(port, timeout))
                try:
                    ws.send(json.dumps({"id": 1, "method": "Page.stopLoading"}))
                    ws.recv()
                finally:
                    ws.close()
            return True
        except Exception as exc:
            logger.info("browser=%s interrupt failed: %s", self.id, exc)
            return False

    def _devtools_socket(self, port: int, timeout: float) -> socket.socket:
        """A connection to Chromium's DevTools port: inside the browser's namespace."""
        namespace = self.namespace
        if namespace is not None:
            return namespace.connect(port, timeout)
        if self.spec.isolate_network:
            raise ConnectionError("the browser's namespace is closed")
        return socket.create_connection(("127.0.0.1", port), timeout)

    def _interrupt_through_grid(self, websocket, timeout: float) -> bool:
        """On a Grid the browser's DevTools port is the node's; the Grid proxies a
        browser-level CDP socket (``se:cdp``): attach to the page, then stop it."""
        url = self.driver.capabilities.get("se:cdp")
        if not url:
            return False
        try:
            ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        except Exception as exc:
            logger.info("browser=%s interrupt failed: %s", self.id, exc)
            return False
        try:
            def call(msg_id, method, params=None, session=None):
                msg = {"id": msg_id, "method": method, "params": params or {}}
                if session:
                    msg["sessionId"] = session
                ws.send(json.dumps(msg))
                while True:
                    reply = json.loads(ws.recv())
                    if reply.get("id") == msg_id:
                        return reply.get("result", {})

            targets = call(1, "Target.getTargets").get("targetInfos", [])
            for n, target in enumerate(t for t in targets if t.get("type") == "page"):
                session = call(100 + n, "Target.attachToTarget",
                               {"targetId": target["targetId"], "flatten": True}).get("sessionId")
                if session:
                    call(200 + n, "Page.stopLoading", session=session)
            return True
        except Exception as exc:
            logger.info("browser=%s interrupt failed: %s", self.id, exc)
            return False
        finally:
            ws.close()

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
        """Close Selenium's keep-alive sockets to chromedriver. Called before the daemon
        fork: DaemonContext closes them and a later socket could reuse their numbers."""
        if self.driver is not None:
            self.driver.command_executor.close()

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
        if self.spec.grid_url:
            if self.session_id:  # the node quits the browser; a blocked command fails
                from .grid import delete_session

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
                from .grid import delete_session  # in case quit() failed half-way

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

    def keep_start_output(self, max_bytes: int = 16384) -> None:
        """A failed start: the tail of chromedriver's log and of its and Chromium's output
        go to the daemon log (not the terminal) before the working dir is deleted."""
        for name in ("chromedriver.out", "chromedriver.log") if self.workdir else ():
            try:
                with open(os.path.join(self.workdir, name), "rb") as f:
                    f.seek(max(0, os.fstat(f.fileno()).st_size - max_bytes))
                    text = f.read().decode("utf-8", "replace").strip()
            except OSError:
                continue
            logger.error("browser=%s failed to start; its %s ends:\n%s", self.id, name, text or "(empty)",
                         extra={"log_only": True})

    def cleanup_workdir(self) -> None:
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _origin(url: str) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]  # an origin has no user:password@
    if parts.scheme in ("http", "https") and host:
        return f"{parts.scheme}://{host}"
    return None


#: Page events of chromedriver's performance log that name a URL a document was (or was
#: asked to be) loaded from: the top frame's and same-process frames' navigations, and the
#: requests of every frame to navigate, which also covers cross-site iframes (their own
#: navigations happen in another target) and script redirects.
_NAVIGATION_EVENTS = {"Page.frameNavigated": lambda p: (p.get("frame") or {}).get("url"),
                      "Page.frameRequestedNavigation": lambda p: p.get("url")}


def navigated_urls(driver) -> list[str]:
    """The URLs of the frame navigations since the last call (chromedriver's performance
    log, read and emptied). A job's page can run scripts in origins neither its URL nor its
    final URL names (a script redirect, an iframe); each can have stored data. Empty, not
    an error, if the log cannot be read (a driver started without it)."""
    try:
        entries = driver.execute("getLog", {"type": "performance"})["value"]
    except WebDriverException as exc:
        logger.debug("performance log unavailable: %s", str(exc).strip().splitlines()[:1])
        return []
    urls = []
    for entry in entries:
        try:
            message = json.loads(entry["message"])["message"]
            pick = _NAVIGATION_EVENTS.get(message.get("method"))
            url = pick(message.get("params") or {}) if pick else None
        except (KeyError, TypeError, ValueError):
            continue
        if url:
            urls.append(url)
    return urls


def set_blocking(browser: Browser, patterns: tuple) -> None:
    """Block requests whose URL matches ``patterns`` (Chromium wildcards) from now on, in
    every page of the browser's tab; ``()`` lifts the blocking. A no-op when unchanged."""
    if tuple(patterns) == browser.blocked:
        return
    driver = browser.driver
    if patterns and not browser.blocked:
        driver.execute("executeCdpCommand", {"cmd": "Network.enable", "params": {}})
    driver.execute("executeCdpCommand", {"cmd": "Network.setBlockedURLs", "params": {"urls": list(patterns)}})
    # Network stays enabled: chromedriver's performance log needs its events.
    browser.blocked = tuple(patterns)


def deny_downloads(driver) -> None:
    """No download anywhere (between jobs)."""
    driver.execute("executeCdpCommand", {"cmd": "Browser.setDownloadBehavior", "params": {"behavior": "deny"}})


def allow_downloads(driver, directory: str) -> None:
    """Downloads of this job go to ``directory``, each named by its guid."""
    driver.execute("executeCdpCommand", {"cmd": "Browser.setDownloadBehavior",
                                         "params": {"behavior": "allowAndName", "downloadPath": directory,
                                                    "eventsEnabled": True}})


def cancel_downloads(driver, guids) -> None:
    for guid in guids:
        try:
            driver.execute("executeCdpCommand", {"cmd": "Browser.cancelDownload", "params": {"guid": guid}})
        except WebDriverException:
            pass


def reset_browser(browser: Browser, clear_session: bool, urls=(), contacted=(), clear_cache: bool = True) -> dict:
    """Bring a browser back to one blank tab with nothing of the job left (see
    :mod:`browserd.hygiene`); unless the site keeps its session, drop every cookie, the
    permissions and the storage of every origin the job touched (``urls``, the navigation
    log, the egress proxy's ``contacted`` host:ports); ``clear_cache``: the HTTP cache
    too. Raises if the browser cannot be proven clean (the pool then replaces it).
    Returns the milliseconds of each step."""
    t0 = time.perf_counter()
    seen = navigated_urls(browser.driver)
    origins = origins_of(list(urls) + seen, contacted)
    if not clear_session:  # the session stays; so does the list of what a later wipe must clear
        browser.session_urls.update(origins)
    timing = {"log": (time.perf_counter() - t0) * 1000}
    # The same tab, blanked (a new tab only as the fallback): a hook's overrides on it
    # (browser.dressed_by) are dropped before another site's job (Pool._before).
    timing.update(hygiene_of(browser).reset(origins, clear_storage=clear_session, clear_cache=clear_cache))
    return timing


def clear_session_state(browser: Browser, urls) -> None:
    """Drop every cookie, the permissions, and all storage of the origins of ``urls``
    (a session site's, before another site's job): the tab is reset too."""
    hygiene_of(browser).reset(origins_of(urls), clear_storage=True, clear_cache=False)
