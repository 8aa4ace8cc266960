"""How a browser is launched: Chromium's command line and capabilities
(:func:`chrome_options`), the pool-wide :class:`LaunchSpec`, and the WebDriver client
class that handles JavaScript dialogs by the job's policy (STYLE trap 20)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from selenium import webdriver
from selenium.webdriver.chromium.remote_connection import ChromiumRemoteConnection

from ..netns import Namespace, NamespacePoolManager

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


class NamespaceConnection(ChromiumRemoteConnection):
    """Selenium's connection to a chromedriver inside a browser's network namespace."""

    namespace: Namespace

    def __init__(self, namespace: Namespace, **kwargs):
        self.namespace = namespace
        super().__init__(**kwargs)

    def _get_connection_manager(self):
        return NamespacePoolManager(self.namespace, timeout=self._client_config.timeout)


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
    """Chromium's options for one browser: headless flags, its profile directory, the
    egress proxy as the only way out (``egress_port``; 0: none), the performance log
    (network and page events), dialogs left to :class:`DialogDriver`, downloads kept in the
    browser's own directory."""
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
    # main document, its status, headers and net error (browserd.browser.navigation). Measured
    # with one warm browser, /static fetch + blank + log reads, medians of 30: 255/179 ms
    # without network events, 165/167 ms with (within the noise of 2 shared cores).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": True})
    # Dialogs are left open for DialogDriver.execute to handle by the job's policy.
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
#: WebDriver commands (Selenium's names) that can change the driver's current window.
_WINDOW_COMMANDS = frozenset({"switchToWindow", "newWindow", "close"})
#: Dialogs one WebDriver command may meet before it gives up handling them.
MAX_DIALOGS_PER_COMMAND = 50


class DialogDriver(webdriver.Remote):
    """A WebDriver whose commands never fail on a JavaScript dialog (STYLE trap 20): an
    open dialog is accepted or dismissed by ``dialog_policy`` (type -> "accept" or
    "dismiss"), its type and text kept in ``netlog`` (the job's performance-log events),
    and the command run again."""

    dialog_policy: dict = DEFAULT_DIALOGS
    netlog = None
    #: True once a command may have moved the driver to another window than the tab the
    #: reset knows (a site's ``switch_to.window``, a new window, a closed one); the reset's
    #: own switch sets it back (:meth:`browserd.browser.hygiene.Hygiene.fresh_tab`).
    window_moved = False

    def execute(self, driver_command, params=None):
        """Run one WebDriver command (Selenium's ``execute``); an open dialog is handled by
        the policy and the command sent again, up to ``MAX_DIALOGS_PER_COMMAND`` times."""
        from selenium.common.exceptions import UnexpectedAlertPresentException

        if driver_command in _WINDOW_COMMANDS:
            self.window_moved = True
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

