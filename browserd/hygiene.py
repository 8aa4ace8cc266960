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

import http.client
import itertools
import json
import logging
import time
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

#: What a page can store for its origin, for Storage.clearDataForOrigin. Not "all": cookies are
#: dropped for every origin at once by Storage.clearCookies, and "all" also clears the
#: shader cache (GPU, off here), which costs ~6 ms per reset and holds nothing of a page's.
STORAGE_TYPES = ("local_storage,indexeddb,websql,service_workers,cache_storage,file_systems,"
                 "shared_storage,storage_buckets,interest_groups")
#: Rounds of "list the targets, close every other page" before the reset gives up.
CLOSE_ROUNDS = 40
#: Seconds a reset step may take (a hung renderer: the tab is replaced instead).
STEP_TIMEOUT = 3.0
#: Seconds the reset waits for closed targets and stopped workers to leave the list.
SETTLE = 2.0
_WORKERS = ("service_worker", "shared_worker", "worker")


class ResetUnproven(RuntimeError):
    """The reset could not prove the browser clean: the pool replaces it."""


class DevToolsError(RuntimeError):
    """A DevTools command answered with an error."""


class DevTools:
    """A browser-level DevTools (CDP) connection: commands by id, events skipped."""

    def __init__(self, ws):
        self.ws = ws
        self._ids = itertools.count(1)

    @classmethod
    def connect(cls, browser, timeout: float = 5.0) -> "DevTools":
        import websocket  # websocket-client: a dependency of Selenium

        if browser.spec.grid_url:  # the Grid proxies a browser-level CDP socket
            url = browser.driver.capabilities.get("se:cdp")
            if not url:
                raise ResetUnproven("the Grid offers no CDP socket")
            return cls(websocket.create_connection(url, timeout=timeout, suppress_origin=True))
        port = int(browser.debugger_address.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.sock = browser.namespace.connect(port, timeout)  # DevTools is in the namespace
        try:
            conn.request("GET", "/json/version")
            url = json.loads(conn.getresponse().read())["webSocketDebuggerUrl"]
        finally:
            conn.close()
        return cls(websocket.create_connection(url, timeout=timeout, suppress_origin=True,
                                               socket=browser.namespace.connect(port, timeout)))

    def batch(self, calls, timeout: float = STEP_TIMEOUT) -> list:
        """Send every ``(method, params, session)`` at once; return their results in order,
        a :class:`DevToolsError` in place of a command that failed. Raises TimeoutError
        when not all answered within ``timeout``."""
        ids = []
        for method, params, session in calls:
            msg_id = next(self._ids)
            msg = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            self.ws.send(json.dumps(msg))
            ids.append(msg_id)
        pending, results = set(ids), {}
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"DevTools did not answer {len(pending)} of {len(ids)} commands in {timeout:.1f}s")
            self.ws.settimeout(left)
            try:
                reply = json.loads(self.ws.recv())
            except Exception as exc:  # websocket's timeout is its own class
                if "timed out" in str(exc).lower() or type(exc).__name__.endswith("TimeoutException"):
                    continue
                raise
            if reply.get("id") in pending:
                pending.discard(reply["id"])
                error = reply.get("error")
                results[reply["id"]] = DevToolsError(error.get("message", str(error))) if error else reply.get("result", {})
        return [results[i] for i in ids]

    def call(self, method: str, params=None, session=None, timeout: float = STEP_TIMEOUT):
        result = self.batch([(method, params, session)], timeout)[0]
        if isinstance(result, DevToolsError):
            raise result
        return result

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


def origins_of(urls=(), contacted=()) -> list[str]:
    """The origins whose storage a job may have written: those of ``urls`` (http/https
    only, without credentials), and for each ``(host, port)`` the browser connected to,
    both its http and https origin (a default port is left out, as in an origin)."""
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
    for host, port in contacted:
        host = str(host).lower()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        for scheme, default in (("http", 80), ("https", 443)):
            found.add(f"{scheme}://{host}" if port == default else f"{scheme}://{host}:{port}")
    return sorted(found)


class Hygiene:
    """The reset of one browser. Used only by the thread holding the browser."""

    def __init__(self, browser):
        self.browser = browser
        self.devtools: DevTools | None = None
        self.tab: str | None = None       # the target id of the tab the driver uses
        self.session: str | None = None   # our DevTools session on that tab
        self.window_size: dict | None = None

    # -- connection ----------------------------------------------------------------------

    def _ready(self) -> DevTools:
        if self.devtools is None:
            self.devtools = DevTools.connect(self.browser)
        if self.tab is None:
            driver = self.browser.driver
            self.tab = driver.current_window_handle  # chromedriver's handles are target ids
            self.window_size = self.window_size or driver.get_window_size()
            self.session = self.devtools.call("Target.attachToTarget",
                                              {"targetId": self.tab, "flatten": True})["sessionId"]
        return self.devtools

    def close(self) -> None:
        if self.devtools is not None:
            self.devtools.close()
        self.devtools = self.tab = self.session = None

    # -- steps -----------------------------------------------------------------------------

    def _pages(self) -> list[dict]:
        infos = self.devtools.call("Target.getTargets")["targetInfos"]
        return [t for t in infos if t.get("type") not in ("browser", "browser_ui", "iframe", "tab")]

    def _close_others(self) -> int:
        """Close every target but the tab (pages, popups, workers) until none is left;
        returns how many rounds it took. Raises ResetUnproven when it never settles."""
        deadline = time.monotonic() + SETTLE
        for rounds in range(1, CLOSE_ROUNDS + 1):
            others = [t for t in self._pages() if t["targetId"] != self.tab]
            if not others:
                return rounds
            closable = [t for t in others if t.get("type") not in _WORKERS]
            if not closable and time.monotonic() > deadline:
                break
            if closable:
                self.devtools.batch([("Target.closeTarget", {"targetId": t["targetId"]}, None) for t in closable])
            else:  # only workers: they stop once their documents and registrations are gone
                for t in others:
                    self.devtools.batch([("Target.closeTarget", {"targetId": t["targetId"]}, None)])
                time.sleep(0.02)
        left = [(t.get("type"), t.get("url", "")[:80]) for t in self._pages() if t["targetId"] != self.tab]
        raise ResetUnproven(f"targets still open after {CLOSE_ROUNDS} rounds: {left[:5]}")

    def _blank_tab(self) -> None:
        """Stop the tab's document: dismiss a dialog, go to about:blank, forget its name
        and history. A tab that does not answer is replaced by a fresh one."""
        s = self.session
        try:
            results = self.devtools.batch([
                ("Page.handleJavaScriptDialog", {"accept": False}, s),  # fails when none: fine
                ("Page.navigate", {"url": "about:blank"}, s),
                ("Runtime.evaluate", {"expression": "window.name = ''"}, s),
                ("Page.resetNavigationHistory", {}, s),
            ])
        except TimeoutError as exc:
            logger.info("browser=%s tab does not answer (%s); a fresh tab replaces it", self.browser.id, exc)
            self.fresh_tab()
            return
        failed = [r for r in results[1:] if isinstance(r, DevToolsError)]
        if failed:
            logger.info("browser=%s blanking the tab failed (%s); a fresh tab replaces it", self.browser.id, failed[0])
            self.fresh_tab()

    def fresh_tab(self, restore_size: bool = True) -> None:
        """A new tab for the driver, the old one closed: no document, name, history,
        dialog or per-tab override (emulation, user agent, blocking) of the old one
        survives; the window size is set back to the browser's first one."""
        devtools = self._ready()
        old = self.tab
        new = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.browser.driver.switch_to.window(new)
        self.tab = new
        self.session = devtools.call("Target.attachToTarget", {"targetId": new, "flatten": True})["sessionId"]
        devtools.batch([("Target.closeTarget", {"targetId": old}, None)])
        if restore_size and self.window_size:
            self.browser.driver.set_window_size(self.window_size["width"], self.window_size["height"])
        self.browser.blocked = ()  # Network.setBlockedURLs was the old tab's

    def clear_cache(self) -> None:
        self._ready()
        self.devtools.call("Network.clearBrowserCache", {}, self.session)

    def reset(self, origins=(), *, clear_storage: bool = True, clear_cache: bool = True,
              fresh: bool = True, restore_size: bool = False) -> dict:
        """Stop every document of the job, clear what it stored (``clear_storage``: cookies,
        permissions and the storage of ``origins``; ``clear_cache``: the HTTP cache), and
        prove the browser clean. ``fresh``: the job's tab is replaced by a new one (whose
        first navigation replaces its initial empty document, so the next job's history has
        one entry); else it goes to about:blank (a session site's tab keeps its overrides).
        ``restore_size``: a hook may have resized the window. Returns milliseconds per step."""
        timing = {}
        t0 = time.perf_counter()
        devtools = self._ready()
        if fresh:
            self.fresh_tab(restore_size)
        else:
            self._blank_tab()
        self._close_others()
        t1 = time.perf_counter()
        timing["stop"] = (t1 - t0) * 1000
        s = self.session
        calls = [("Network.clearBrowserCache", {}, s)] if clear_cache else []
        if clear_storage:
            calls += [("Storage.clearCookies", {}, None), ("Browser.resetPermissions", {}, None)]
            calls += [("Storage.clearDataForOrigin", {"origin": o, "storageTypes": STORAGE_TYPES}, s)
                      for o in origins]
        failed = [(c[0], r) for c, r in zip(calls, devtools.batch(calls, timeout=STEP_TIMEOUT * 2) if calls else [])
                  if isinstance(r, DevToolsError)]
        if failed:
            raise ResetUnproven(f"{failed[0][0]} failed: {failed[0][1]}")
        t2 = time.perf_counter()
        timing["clear"] = (t2 - t1) * 1000
        self._prove(fresh)
        timing["prove"] = (time.perf_counter() - t2) * 1000
        return timing

    def _prove(self, fresh: bool = True) -> None:
        deadline = time.monotonic() + SETTLE
        while True:
            targets, state = self.devtools.batch([
                ("Target.getTargets", {}, None),
                ("Runtime.evaluate", {"expression": "[window.name, history.length, location.href]",
                                      "returnByValue": True}, self.session),
            ])
            if isinstance(targets, DevToolsError) or isinstance(state, DevToolsError):
                raise ResetUnproven(f"cannot read the browser's state: {targets if isinstance(targets, DevToolsError) else state}")
            pages = [t for t in targets["targetInfos"] if t.get("type") not in ("browser", "browser_ui", "iframe", "tab")]
            value = (state.get("result") or {}).get("value")
            clean = ([t["targetId"] for t in pages] == [self.tab] and value == ["", 1, "about:blank"])
            if clean:
                return
            if time.monotonic() > deadline:
                raise ResetUnproven(f"not clean: targets {[(t.get('type'), t.get('url', '')[:60]) for t in pages]}, "
                                    f"tab state {value}")
            self._close_others()
            time.sleep(0.02)


def hygiene_of(browser) -> Hygiene:
    if browser.hygiene is None:
        browser.hygiene = Hygiene(browser)
    return browser.hygiene
