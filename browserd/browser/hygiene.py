"""Per-job hygiene: after a job, nothing its pages did may reach the next job.

The reset talks to the browser over its own browser-level DevTools connection (one per
browser, used only by the thread holding the browser, like the WebDriver): that sees every
target (popups of popups included, which chromedriver only learns of when asked), is not
blocked by a dialog open in the tab (STYLE trap 20) and lets independent commands be
*pipelined*: sent together, answered together, so their costs overlap.

A reset, in order:

1. **stop every document**: the tab is sent to ``about:blank`` (a dialog dismissed
   first), ``window.name`` emptied and its session history reset; every other page
   target is closed in one pass, and the target list read again until no other page is
   left (popups opening popups: bounded rounds). A tab that does not answer (a
   ``while(true){}`` renderer) is replaced by a fresh tab.
2. **clear** (documents are gone, nothing can write any more): cookies, permissions, the
   HTTP cache (unless the site shares it), and the storage of every origin the job
   touched: the URLs it loaded, chromedriver's navigation log, and every ``host:port`` the
   browser asked the egress proxy for (every window, frame and worker; the scheme is not
   known there, so both http and https are cleared).
3. **prove it**: one page target, on ``about:blank``, ``window.name`` empty, history of
   one entry, no worker left. Anything else raises :class:`ResetUnproven` and the pool
   replaces the browser.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from urllib.parse import urlsplit

from .devtools import STEP_TIMEOUT, DevTools, DevToolsError, ResetUnproven
from .navigation import enable_network

logger = logging.getLogger(__name__)

#: What a page can store for its origin, for Storage.clearDataForOrigin. Not "all": cookies are
#: dropped for every origin at once by Storage.clearCookies, and "all" also clears the
#: shader cache (GPU, off here), which costs ~6 ms per reset and holds nothing of a page's.
STORAGE_TYPES = ("local_storage,indexeddb,websql,service_workers,cache_storage,file_systems,"
                 "shared_storage,storage_buckets,interest_groups")
#: Rounds of "list the targets, close every other page" before the reset gives up (rounds
#: that only wait for the tab's commit are bounded by ``SETTLE`` instead).
CLOSE_ROUNDS = 40
#: Seconds the reset waits for closed targets and stopped workers to leave the list (a
#: loaded 2-core machine needs more than the ~50 ms a quiet one does; past it, the browser
#: is replaced, which costs a start).
SETTLE = 5.0
#: Seconds between two reads of a tab whose blank navigation has not committed yet.
COMMIT_POLL = 0.005
#: Seconds the stop waits for the commit of an early blank navigation (begin_stop) before
#: it sends the navigation again.
EARLY_BLANK_WAIT = 0.5
#: Seconds a browser that had a popup storm must stay at one window before it is proven.
QUIET = 0.5
_WINDOWS = ("page", "background_page", "app", "webview")
_WORKERS = ("service_worker", "shared_worker", "worker")


class TabUnusable(Exception):
    """The reset's session on the tab answers no page command (after a job that ended on
    Chromium's own error page, the session is left on an inactive frame: "Not attached
    to an active page"): the reset goes on in a fresh tab."""


def origins_of(urls=(), contacted=()) -> list[str]:
    """The origins whose storage a job may have written: those of ``urls`` (http/https
    only, without credentials), and for each ``(host, port, scheme)`` the browser
    connected to (:meth:`browserd.egress.EgressProxy.contacted`), the origin of that
    scheme; both the http and the https origin when the scheme is None or left out
    (``(host, port)``). A default port is left out, as in an origin."""
    found = set()
    for url in urls:
        try:
            parts = urlsplit(url)
            host = parts.netloc.rsplit("@", 1)[-1].lower()
        except (ValueError, AttributeError):
            continue
        if parts.scheme in ("http", "https") and host:
            default = {"http": ":80", "https": ":443"}[parts.scheme]
            found.add(f"{parts.scheme}://{host[:-len(default)] if host.endswith(default) else host}")
    defaults = {"http": 80, "https": 443}
    for host, port, *scheme in contacted:
        host = str(host).lower()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        for name in [scheme[0]] if scheme and scheme[0] in defaults else defaults:
            found.add(f"{name}://{host}" if port == defaults[name] else f"{name}://{host}:{port}")
    return sorted(found)


def _site_candidates(scheme: str, host: str) -> list[str]:
    """Every schemeful site ``host`` may belong to: the host itself for an IP address or a
    single label, else each of its dot suffixes of two labels or more (the registrable
    domain is one of them; without the public suffix list, all are tried: clearing a key
    that holds nothing costs ~0.2 ms)."""
    host = host.lower().strip("[]")
    try:
        ipaddress.ip_address(host)
        return [f"{scheme}://[{host}]" if ":" in host else f"{scheme}://{host}"]
    except ValueError:
        pass
    labels = host.split(".")
    return [f"{scheme}://" + ".".join(labels[i:]) for i in range(max(1, len(labels) - 1))]


#: Third-party storage keys a reset clears at most (~0.2 ms each); a job with more (a page
#: whose popups reached many hosts) is not proven: the browser is replaced instead.
MAX_PARTITION_KEYS = 2000


def partition_keys(origins, top_urls) -> list[str]:
    """The storage keys a job's third-party frames and workers may have written: each of
    ``origins`` under each top-level site of ``top_urls`` (the job's top-level documents)
    that is not its own site. Chromium partitions third-party storage by the top-level
    site, and ``Storage.clearDataForOrigin`` clears only the first-party key; the
    serialization is Chromium's ``StorageKey``: ``"<origin>/^0<top-level site>"``
    (third_party/blink/common/storage_key/storage_key.cc). Raises ``ResetUnproven`` past
    :data:`MAX_PARTITION_KEYS` pairs (checked before any key is built)."""
    tops = set()
    for url in top_urls:
        try:
            parts = urlsplit(url)
        except (ValueError, AttributeError):
            continue
        if parts.scheme in ("http", "https") and parts.hostname:
            tops.update(_site_candidates(parts.scheme, parts.hostname))
    if len(origins) * len(tops) > MAX_PARTITION_KEYS:
        raise ResetUnproven(f"{len(origins)} origins under {len(tops)} top-level sites: more third-party "
                            f"storage keys than the {MAX_PARTITION_KEYS} a reset clears")
    keys = []
    for origin in origins:
        parts = urlsplit(origin)
        own = set(_site_candidates(parts.scheme, parts.hostname or ""))
        keys += [f"{origin}/^0{site}" for site in sorted(tops - own)]
    return keys


class Hygiene:
    """The reset of one browser. Used only by the thread holding the browser (the job's
    or the reset's, as the pool's states say); :meth:`close` is safe from any thread."""

    def __init__(self, browser):
        self.browser = browser
        self.devtools: DevTools | None = None
        self.tab: str | None = None       # the target id of the tab the driver uses
        self.session: str | None = None   # our DevTools session on that tab
        self.window_size: dict | None = None
        self.fresh_tabs = 0               # fallbacks to a new tab (for status and tests)
        self.storm = False                # this reset met windows opening windows
        self.blanking = False             # begin_stop sent the tab to about:blank already
        self.forgotten = False            # the stop sent _FORGET after the blank commit
        self.windows_seen: list[str] = []  # URLs of other windows this reset's stop closed

    # -- connection ----------------------------------------------------------------------

    def _ready(self) -> DevTools:
        if self.devtools is None:
            self.devtools = DevTools.connect(self.browser)
        if self.tab is None:
            driver = self.browser.driver
            self.tab = driver.current_window_handle  # chromedriver's handles are target ids
            driver.window_moved = False
            self.window_size = self.window_size or driver.get_window_size()
            self.session = self.devtools.call("Target.attachToTarget",
                                              {"targetId": self.tab, "flatten": True})["sessionId"]
        return self.devtools

    def close(self) -> None:
        """Drop the DevTools connection (the next use connects again). Called by
        ``Browser.kill`` from any thread: it only closes the socket, which makes a
        command blocked on it fail at once."""
        if self.devtools is not None:
            self.devtools.close()
        self.devtools = self.tab = self.session = None
        self.blanking = self.forgotten = False

    def begin_stop(self) -> bool:
        """(The job's thread, its result read.) Send the tab to about:blank now without
        waiting, so that the commit overlaps the job's wind-down and the hand-over to the
        reset, whose stop then only checks it (and navigates again if it did not happen).
        False, never an exception, if it could not be sent."""
        try:
            self._ready()
            self.devtools.send([("Page.navigate", {"url": "about:blank"}, self.session)])
        except Exception as exc:  # noqa: BLE001 - the reset navigates itself
            logger.debug("browser=%s early blank navigation failed: %s", self.browser.id, exc)
            return False
        self.blanking = True
        return True

    # -- steps -----------------------------------------------------------------------------

    def _stop(self, deny_downloads: bool = False) -> int:
        """Stop every document of the job in the same tab: dismiss a dialog, send the tab
        to about:blank, close every other window and worker, all in one batch, and repeat
        (closes and the target list in one batch a round) until no other window is left
        and the tab has committed about:blank. Returns the rounds it took. A popup storm
        (windows still there after a round closed every one: they open more) is over when
        a round finds none; it is then watched for ``QUIET`` seconds more (_clear_and_prove).
        (Not frozen: a browser-wide ``Target.setAutoAttach(waitForDebuggerOnStart)`` also
        holds the kept tab's next navigation, and a browser-wide ``Fetch.enable`` leaves
        unclosable windows: both broke chromedriver's next ``get``. A storm that outlasts
        ``SETTLE`` is not proven: the browser is replaced.) Raises TimeoutError (the tab does not answer) or ResetUnproven (never settles)."""
        s, devtools = self.session, self.devtools
        first = [("Browser.setDownloadBehavior", {"behavior": "deny"}, None)] if deny_downloads else []
        blank = ("Page.navigate", {"url": "about:blank"}, s)
        early, self.blanking = self.blanking, False  # begin_stop sent it: not twice (a second commit)
        results = devtools.batch(first + [
            ("Page.handleJavaScriptDialog", {"accept": False}, s),  # fails when none: fine
            ("Target.getTargets", {}, None) if early else blank,
            ("Target.getTargets", {}, None),
            ("Page.getNavigationHistory", {}, s),
        ])
        if first and isinstance(results[0], DevToolsError):
            raise ResetUnproven(f"downloads not denied: {results[0]}")
        results = results[len(first):]
        if isinstance(results[1], DevToolsError):
            raise TimeoutError(f"about:blank: {results[1]}")
        # An early navigation a dialog held (dismissed now) or the page's own navigation
        # overtook is sent again: at once after a dialog, else once the commit is late.
        resend_at = time.monotonic() + (0.0 if not isinstance(results[0], DevToolsError) else EARLY_BLANK_WAIT) \
            if early else None
        deadline = time.monotonic() + SETTLE
        rounds = closing = 0
        while closing < CLOSE_ROUNDS:
            rounds += 1
            targets, history = results[-2], results[-1]
            if isinstance(targets, DevToolsError):
                raise ResetUnproven(f"cannot read the targets: {targets}")
            if isinstance(history, DevToolsError):  # e.g. "Not attached to an active page"
                raise TabUnusable(f"the tab's history cannot be read: {history}")
            others = [t for t in targets["targetInfos"] if t["targetId"] != self.tab and _closable(t)]
            self.windows_seen += [t.get("url", "") for t in others if _is_window(t)]
            committed = history["entries"][history["currentIndex"]]["url"] == "about:blank"
            if not any(_is_window(t) for t in others) and committed:
                # Workers of closed documents are closed without waiting for them; the
                # tab's name and history are forgotten now, not by the clear's batch, so
                # that the renderer knows by the proof (read in the same batch as the
                # prune, history.length was still 2: a 20 ms wait and a second read).
                devtools.send([("Target.closeTarget", {"targetId": t["targetId"]}, None) for t in others]
                              + _FORGET(s))
                self.forgotten = True
                return rounds
            if time.monotonic() > deadline:
                break
            if rounds > 1 and any(_is_window(t) for t in others):
                self.storm = True  # windows opened while others were being closed
            again = []
            if resend_at is not None and not committed and time.monotonic() >= resend_at:
                again, resend_at = [blank], None
            if others:
                closing += 1  # a storm gets CLOSE_ROUNDS rounds of closes
            else:
                # Only the commit is missing (a loaded machine, a large page to unload):
                # read again a little later, until SETTLE, not CLOSE_ROUNDS fast reads.
                time.sleep(COMMIT_POLL)
            results = devtools.batch([("Target.closeTarget", {"targetId": t["targetId"]}, None) for t in others]
                                     + again + [("Target.getTargets", {}, None), ("Page.getNavigationHistory", {}, s)])
        left = [(t.get("type"), t.get("url", "")[:80]) for t in others]
        raise ResetUnproven(f"windows still open after {rounds} rounds: {left[:5]}"
                            if others else "the tab did not commit about:blank")

    def fresh_tab(self, restore_size: bool = True) -> None:
        """A new tab for the driver, the old one closed (the fallback: a dialog that does
        not go, a tab that does not answer, a reset that did not prove clean, another
        site's hook overrides): nothing of the old tab's document, name, dialog or per-tab
        overrides (emulation, user agent, blocking) survives; the window size is set back
        to the browser's first one."""
        devtools = self._ready()
        old = self.tab
        new = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.browser.driver.switch_to.window(new)
        enable_network(self.browser.driver)  # the driver's session on the new tab has DevTools' buffers
        self.browser.driver.window_moved = False
        self.tab = new
        self.session = devtools.call("Target.attachToTarget", {"targetId": new, "flatten": True})["sessionId"]
        devtools.batch([("Target.closeTarget", {"targetId": old}, None)])
        if restore_size and self.window_size:
            self.browser.driver.set_window_size(self.window_size["width"], self.window_size["height"])
        self.browser.blocked = ()  # Network.setBlockedURLs was the old tab's
        self.fresh_tabs += 1

    def replace_crashed_tab(self) -> None:
        """A fresh tab for the driver after the tab's renderer was killed: like
        :meth:`fresh_tab`, without attaching to the crashed tab (which may refuse)."""
        if self.devtools is None:
            self.devtools = DevTools.connect(self.browser)
        if self.tab is None:  # no session on it yet (a fork dropped the connection)
            self.tab = self.browser.driver.current_window_handle
        self.fresh_tab()

    def main_frame(self) -> dict | None:
        """The driver's top frame as ``Page.getFrameTree`` describes it (as
        :func:`browserd.browser.navigation.main_frame`), read over this connection: one
        DevTools round trip instead of a chromedriver command. None when the driver may be
        on another window than the reset's tab (a site switched windows), or the read
        failed: the caller asks chromedriver. None at once when the tab's renderers were
        killed (``Browser.tab_crashed``): a crashed tab answers no page command, and waiting
        for it held the job's thread past the abort, which cost the browser."""
        tab = self.page_session()
        if tab is None:
            return None
        devtools, session = tab
        try:
            return dict(devtools.call("Page.getFrameTree", {}, session)["frameTree"]["frame"])
        except Exception as exc:  # noqa: BLE001 - chromedriver's path decides
            logger.debug("browser=%s frame tree over DevTools failed: %s", self.browser.id, exc)
            return None

    def page_session(self) -> tuple[DevTools, str] | None:
        """``(devtools, session)``: this connection and its flat session on the driver's
        tab, for page commands that must not go through chromedriver (which waits for a
        pending navigation before nearly every command). None when the driver may be on
        another window than the reset's tab (a site switched windows), the tab's renderers
        were killed, or the connection cannot be had (the caller uses chromedriver)."""
        if getattr(self.browser.driver, "window_moved", True) or getattr(self.browser, "tab_crashed", False):
            return None
        try:
            self._ready()
        except Exception as exc:  # noqa: BLE001 - chromedriver's path remains
            logger.debug("browser=%s no DevTools session on the tab: %s", self.browser.id, exc)
            return None
        return self.devtools, self.session

    def set_downloads(self, directory: str | None) -> None:
        """Downloads from now on go to ``directory``, each named by its guid
        (``Browser.setDownloadBehavior`` allowAndName, events on); None: denied. One
        browser-wide command over this connection. Raises DevToolsError, TimeoutError,
        OSError."""
        params = ({"behavior": "deny"} if directory is None else
                  {"behavior": "allowAndName", "downloadPath": directory, "eventsEnabled": True})
        self._ready()
        self.devtools.call("Browser.setDownloadBehavior", params)

    def cancel_downloads(self, guids) -> None:
        """Cancel the downloads ``guids`` (``Browser.cancelDownload``, one batch); one
        already over is skipped. Raises TimeoutError, OSError."""
        self._ready()
        self.devtools.batch([("Browser.cancelDownload", {"guid": g}, None) for g in guids])

    def clear_cache(self) -> None:
        """Empty the browser's HTTP cache (``Network.clearBrowserCache``)."""
        self._ready()
        self.devtools.call("Network.clearBrowserCache", {}, self.session)

    def reset(self, stores=None, *, clear_storage: bool = True, clear_cache: bool = True,
              fresh: bool = False, restore_size: bool = True, deny_downloads: bool = False) -> dict:
        """Stop every document of the job, clear what it stored (``clear_storage``: cookies,
        permissions and the storage of ``origins``; ``clear_cache``: the HTTP cache), and
        prove the browser clean, in the same tab (``fresh``: in a new one). Three batched
        steps: stop (dialog, about:blank, other windows closed until none is left), then
        one batch that clears ``window.name``, the session history and the stores and reads
        the state back (the proof). A reset that does not prove clean is tried once more
        in a fresh tab; then :class:`ResetUnproven`. ``stores``: a callable returning
        ``(origins, third-party storage keys)`` to clear, called once the documents are
        stopped (None: none by name). ``deny_downloads``: no download may
        start from the stop on (after a job; its own are cancelled by the pool). Returns
        milliseconds per step."""
        timing = {}
        t0 = time.perf_counter()
        self._ready()
        self.storm, self.windows_seen = False, []
        try:
            if fresh:
                self.fresh_tab(restore_size)
            try:
                timing["rounds"] = self._stop(deny_downloads)
            except (TimeoutError, TabUnusable) as exc:  # a hung renderer, a dialog that stays,
                # a session left on the inactive frame of Chromium's error page: a new tab
                logger.info("browser=%s tab does not answer (%s); a fresh tab replaces it", self.browser.id, exc)
                self.fresh_tab(restore_size)
                timing["rounds"] = self._stop()
            t1 = time.perf_counter()
            timing["stop"] = (t1 - t0) * 1000
            origins, keys = (), ()
            if stores is not None:  # read once the documents are stopped (see reset_browser)
                origins, keys = stores()
                timing["log"] = (time.perf_counter() - t1) * 1000
                t1 = time.perf_counter()
            problem = self._clear_and_prove(origins, clear_storage, clear_cache, keys)
            if problem:
                logger.info("browser=%s reset not proven (%s); once more in a fresh tab", self.browser.id, problem)
                self.fresh_tab(restore_size)
                self._stop()
                problem = self._clear_and_prove(origins, clear_storage, clear_cache, keys)
                if problem:
                    raise ResetUnproven(problem)
            timing["clear+prove"] = (time.perf_counter() - t1) * 1000
        except TimeoutError as exc:
            raise ResetUnproven(f"the browser does not answer: {exc}") from exc
        return timing

    def _clear_and_prove(self, origins, clear_storage: bool, clear_cache: bool, keys=()) -> str | None:
        """One batch: forget the tab's name and history (about:blank is committed), clear
        the stores (of ``origins``, and of the third-party storage ``keys``), and read the
        state back. None when clean, else what is not. A storm's browser must also stay at
        one window for ``QUIET`` s."""
        s = self.session
        calls = [] if self.forgotten else _FORGET(s)  # the stop sent them once about:blank committed
        self.forgotten = False
        if clear_cache:
            calls.append(("Network.clearBrowserCache", {}, s))
        if clear_storage:
            calls += [("Storage.clearCookies", {}, None), ("Browser.resetPermissions", {}, None)]
            calls += [("Storage.clearDataForOrigin", {"origin": o, "storageTypes": STORAGE_TYPES}, s)
                      for o in origins]
            calls += [("Storage.clearDataForStorageKey", {"storageKey": k, "storageTypes": STORAGE_TYPES}, s)
                      for k in keys]
        n = len(calls)
        calls += _PROOF(s)
        results = self.devtools.batch(calls, timeout=STEP_TIMEOUT * 2)
        failed = [(c[0], r) for c, r in zip(calls[:n], results[:n]) if isinstance(r, DevToolsError)]
        if failed:
            raise ResetUnproven(f"{failed[0][0]} failed: {failed[0][1]}")
        storm = self.storm
        problem = self._unclean(results[n:])
        # The renderer learns of the pruned history just after the batch: read again until
        # clean (bounded). After a storm the browser must also stay at one window a while.
        now = time.monotonic()
        deadline, quiet_until = now + SETTLE, now + (QUIET if storm else 0.0)
        while True:
            if problem and (problem.startswith("windows") or time.monotonic() > deadline):
                return problem  # a window appeared after the stop: the caller tries a fresh tab
            if not problem and time.monotonic() >= quiet_until:
                return None
            time.sleep(0.02)
            problem = self._unclean(self.devtools.batch(_PROOF(s)))

    def _unclean(self, proof) -> str | None:
        targets, state = proof
        if isinstance(targets, DevToolsError) or isinstance(state, DevToolsError):
            return f"cannot read the browser's state: {targets if isinstance(targets, DevToolsError) else state}"
        windows = [t for t in targets["targetInfos"] if _is_window(t)]
        if [t["targetId"] for t in windows] != [self.tab]:
            return f"windows {[(t.get('type'), t.get('url', '')[:60]) for t in windows]}"
        value = (state.get("result") or {}).get("value")
        if value != ["", 1, "about:blank"]:
            return f"tab state [name, history, url] = {value}"
        return None


def _FORGET(session) -> list:
    """The tab's name emptied and its session history pruned to the current entry (sent
    once about:blank has committed: on the job's document they would be undone)."""
    return [("Runtime.evaluate", {"expression": "window.name = ''"}, session),
            ("Page.resetNavigationHistory", {}, session)]


def _PROOF(session) -> list:
    """The proof's reads: every target, and the tab's name, history length and URL."""
    return [("Target.getTargets", {}, None),
            ("Runtime.evaluate", {"expression": "[window.name, history.length, location.href]",
                                  "returnByValue": True}, session)]


def _is_window(target: dict) -> bool:
    return target.get("type") in _WINDOWS


def _closable(target: dict) -> bool:
    return target.get("type") in _WINDOWS + _WORKERS


def hygiene_of(browser) -> Hygiene:
    """The browser's :class:`Hygiene`, made on first use (kept in ``browser.hygiene``)."""
    if browser.hygiene is None:
        browser.hygiene = Hygiene(browser)
    return browser.hygiene
