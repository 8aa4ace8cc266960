"""``wait_until``: when a navigation of the job counts as done.

chromedriver's ``get`` returns at the document's ``load`` event (the session's page-load
strategy is "normal"), which satisfies ``load``. For the other modes every ``driver.get``
of the job's site is replaced (an instance attribute wraps the driver's ``get`` for the
job; :func:`remove` drops it):

- ``domcontentloaded`` (:func:`get_until_dcl`): the navigation is not chromedriver's.
  ``Page.navigate`` goes over the browser's own DevTools connection (the reset's,
  :meth:`browserd.browser.hygiene.Hygiene.page_session`, a flat session on the driver's
  tab), whose reply comes with the document's response (or its failure); then the new document (its
  frame's ``loaderId`` is no longer the one before) is read every :data:`DCL_POLL` s
  until its ``DOMContentLoaded`` handlers have run (Navigation Timing's
  ``domContentLoadedEventEnd``, or ``readyState`` "complete") and no navigation of the
  tab's top frame is under way (its ``Page`` events, kept on our session meanwhile: a
  script redirect before DOMContentLoaded is followed to the document it loads, as
  chromedriver's ``get`` does); then ``Page.stopLoading``:
  what was still loading (images, frames, later requests) is cancelled and the ``load``
  event never fires, so chromedriver's navigation tracker sees the load end and the
  site's next commands (page source, find element) do not wait for ``load``. The page is
  the page as it is at DOMContentLoaded. The main request's rewrite (``method``, a body),
  headers, cookies, the size watch and the performance log (status, headers, redirects,
  net error) hold as for chromedriver's ``get``: they act on the tab, whoever navigates
  it. A failed navigation (``errorText``; Chromium's error page), a download or a
  same-document one returns at once: the job's read path reports it as for ``get``. An
  abort (deadline, client gone) stops the load (:meth:`~browserd.pool.execution.Execution._interrupt`)
  and ends the wait at its next look. A page that does not answer a look within
  :data:`LOOK_TIMEOUT` s (a dialog open while it loads, a long script) or a failed
  ``Page.stopLoading`` is left to chromedriver, which waits for ``load`` (and handles the
  dialog by the site's policy); without a DevTools session on the tab (a site moved to
  another window, a crashed tab, no connection: e.g. a Grid without ``se:cdp``) the ``get``
  is chromedriver's: ``load``. Either is noted in the job's ``notes["wait_until"]``.
- ``networkidle`` and ``settled``: chromedriver's ``get``, then a wait:

  - ``networkidle``: no request of the tab in flight for :data:`IDLE_MS` ms, from the
    ``Network.*`` events of chromedriver's performance log (the job's ``NetLog``);
  - ``settled``: that, and no DOM mutation (a ``MutationObserver`` put in the page) for
    ``settle_ms``.

Each wait is bounded by the job's deadline: past it, ``timeout`` naming what was still
busy.
"""

from __future__ import annotations

import logging
import secrets
import time
from contextlib import contextmanager

from browserd_client.errors import Timeout

from ..browser.devtools import DevToolsError
from ..browser.hygiene import hygiene_of
from .apply import cdp

logger = logging.getLogger(__name__)

#: networkidle: no request in flight for this many milliseconds.
IDLE_MS = 500
#: Seconds between two looks at the network and the DOM.
POLL = 0.05
#: domcontentloaded: seconds between two looks at the loading document.
DCL_POLL = 0.02
#: domcontentloaded: seconds a look may take; past it the page is left to chromedriver (a
#: dialog open while it loads blocks the page's script).
LOOK_TIMEOUT = 1.0


def install(browser, job) -> None:
    """Make the job's ``driver.get`` calls wait for ``job.options.wait_until`` (nothing
    for ``load``: chromedriver's own ``get``)."""
    mode = job.options.wait_until
    if mode not in ("domcontentloaded", "networkidle", "settled"):
        return
    driver = browser.driver
    plain_get = type(driver).get

    def get(url):
        if mode == "domcontentloaded":
            get_until_dcl(browser, job, url)
            return
        plain_get(driver, url)
        wait(driver, job, mode)

    driver.get = get


def remove(driver) -> None:
    """Take the job's wrapped ``get`` off the driver (no-op if none was installed)."""
    driver.__dict__.pop("get", None)


def in_flight(events) -> set:
    """Request ids of the performance log's events that have begun and not ended."""
    open_ = set()
    for method, p in events:
        rid = p.get("requestId")
        if method == "Network.requestWillBeSent":
            open_.add(rid)
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            open_.discard(rid)
    return open_


_ACTIVITY = ("Network.requestWillBeSent", "Network.loadingFinished", "Network.loadingFailed")


def _network_activity(events) -> bool:
    """Whether any of ``events`` is a request beginning or ending (one that began and ended
    between two looks was in flight meanwhile, though neither look saw it)."""
    return any(method in _ACTIVITY for method, _ in events)


_OBSERVER = """(() => {
  const key = %s;
  if (!window[key]) {
    const state = {last: performance.now()};
    new MutationObserver(() => { state.last = performance.now(); }).observe(
        document, {subtree: true, childList: true, attributes: true, characterData: true});
    Object.defineProperty(window, key, {value: state, enumerable: false});
  }
  return performance.now() - window[key].last;
})()"""


def wait(driver, job, mode: str) -> None:
    """Block until the tab is quiet by ``mode`` ("networkidle" or "settled"), within the
    job's deadline; raises ``Timeout`` past it (``JobAborted`` once the job is aborted)."""
    netlog = getattr(driver, "netlog", None)
    if netlog is None:  # not under the pool (no performance log to read)
        from ..browser.navigation import NetLog
        netlog = driver.netlog = NetLog()
    network_ms = IDLE_MS if mode == "networkidle" else job.options.settle_ms
    script = _OBSERVER % repr("__browserd_settle_" + secrets.token_hex(6)) if mode == "settled" else None
    quiet_since = None
    while True:
        job.check()
        seen = len(netlog.events)
        netlog.pull(driver)
        busy = in_flight(netlog.events)
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None or _network_activity(netlog.events[seen:]):
            quiet_since = now  # a request began or ended since the last look: not quiet then
        dom_quiet_ms = None
        if script is not None:
            reply = cdp(driver, "Runtime.evaluate", {"expression": script, "returnByValue": True})
            dom_quiet_ms = (reply.get("result") or {}).get("value")
            if not isinstance(dom_quiet_ms, (int, float)):
                dom_quiet_ms = 0.0  # a new document: its observer starts now
        network_done = quiet_since is not None and (now - quiet_since) * 1000 >= network_ms
        dom_done = script is None or dom_quiet_ms >= job.options.settle_ms
        if network_done and dom_done:
            return
        if job.remaining() <= POLL:
            what = f"{len(busy)} requests in flight" if busy else "the DOM still changing"
            raise Timeout(f"{job.url}: wait_until {mode} not reached within the job's "
                          f"{job.timeout:.1f}s ({what})")
        time.sleep(POLL)


#: The look at the loading document: [its readyState, whether its DOMContentLoaded
#: handlers have run]. Navigation Timing's entry is the document's own.
_DCL_LOOK = """(() => {
  let done = false;
  try {
    const entry = performance.getEntriesByType('navigation')[0];
    done = !!(entry && entry.domContentLoadedEventEnd > 0);
  } catch (e) {}  // a page that replaced performance: readyState "complete" decides
  // the page can redefine readyState: only a short string comes back (typeof and a
  // primitive's length are not the page's to redefine), never a value of its size
  let state = '';
  try { state = document.readyState; } catch (e) {}  // nor an exception's message
  return [typeof state === 'string' && state.length <= 16 ? state : '', done];
})()"""


def get_until_dcl(browser, job, url: str) -> None:
    """Navigate the driver's tab to ``url`` and return at the new document's
    DOMContentLoaded, its pending loads stopped (see the module's docstring). Raises
    ``Timeout`` past the job's deadline, ``JobAborted`` once the job is aborted, and what
    chromedriver's ``get`` raises where it is used instead."""
    driver = browser.driver
    tab = hygiene_of(browser).page_session()
    if tab is None:
        _hand_over(driver, job, "no DevTools session on the tab", url)
        return
    devtools, session = tab
    try:
        before = devtools.call("Page.getFrameTree", {}, session, timeout=LOOK_TIMEOUT)["frameTree"]["frame"]
    except (DevToolsError, TimeoutError, KeyError, TypeError) as exc:  # nothing sent yet: chromedriver's get
        _hand_over(driver, job, f"Page.getFrameTree: {exc}", url)
        return
    with _tracking(devtools, session):
        try:
            reply = devtools.call("Page.navigate", {"url": url}, session, timeout=max(job.remaining(), POLL))
        except TimeoutError:
            job.check()
            raise Timeout(f"{url}: wait_until domcontentloaded: no response within the job's {job.timeout:.1f}s")
        except DevToolsError as exc:  # refused (a URL DevTools will not navigate to): chromedriver's get
            fallback = (f"Page.navigate: {exc}", url)
        else:
            if reply.get("errorText") or reply.get("isDownload") or not reply.get("loaderId"):
                return  # an error page, a download, a same-document navigation: the read path tells
            done = _await_dcl(devtools, session, job, url, before.get("loaderId"), before.get("id"))
            fallback = None if done else (f"the page did not answer a look within {LOOK_TIMEOUT:.0f} s "
                                          "(a dialog, a long script, or Chromium's error page)", None)
    if fallback:
        _hand_over(driver, job, *fallback)
        return
    try:
        devtools.call("Page.stopLoading", {}, session, timeout=LOOK_TIMEOUT)
    except (DevToolsError, TimeoutError) as exc:
        _hand_over(driver, job, f"Page.stopLoading: {exc}", None)


#: The page events that tell whether the tab's top frame has a navigation under way.
_NAVIGATION_EVENTS = frozenset({"Page.frameRequestedNavigation", "Page.frameStartedNavigating",
                                "Page.frameNavigated", "Page.frameStoppedLoading"})
_SAME_DOCUMENT = ("sameDocument", "historySameDocument")


@contextmanager
def _tracking(devtools, session: str):
    """Keep the session's navigation events meanwhile (``Page.enable`` on our own session:
    chromedriver's is its own); then stop keeping them, ``Page.disable`` sent without
    waiting (a connection gone meanwhile took its events with it)."""
    devtools.keep, devtools.events = _NAVIGATION_EVENTS, []
    devtools.send([("Page.enable", {}, session)])
    try:
        yield
    finally:
        devtools.keep, devtools.events = frozenset(), []
        try:
            devtools.send([("Page.disable", {}, session)])
        except Exception as exc:  # noqa: BLE001
            logger.debug("Page.disable: %s", exc)


def navigation_pending(events, session: str, frame_id: str | None) -> bool:
    """Whether, after ``events`` (kept DevTools events, in order), the top frame
    ``frame_id`` has a navigation to another document under way: one was requested in the
    tab (a script's ``location.replace``, a form, a meta refresh) or started, and has
    neither committed (``frameNavigated``) nor ended without a commit
    (``frameStoppedLoading``: a 204, a download). Same-document navigations do not count."""
    pending = False
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, p = event.get("method"), event.get("params") or {}
        if method == "Page.frameNavigated":
            frame = p.get("frame") or {}
            if frame.get("id") == frame_id and not frame.get("parentId"):
                pending = False
        elif p.get("frameId") != frame_id:
            continue
        elif method == "Page.frameRequestedNavigation":
            pending = pending or p.get("disposition", "currentTab") == "currentTab"
        elif method == "Page.frameStartedNavigating":
            pending = pending or p.get("navigationType") not in _SAME_DOCUMENT
        elif method == "Page.frameStoppedLoading":
            pending = False
    return pending


def _await_dcl(devtools, session: str, job, url: str, old_loader: str | None, frame_id: str | None) -> bool:
    """Look at the tab every :data:`DCL_POLL` s until a document newer than
    ``old_loader`` (the frame's ``loaderId`` before the navigation) has run its
    DOMContentLoaded handlers and no navigation of the top frame ``frame_id`` is under
    way (a script redirect before DOMContentLoaded: the wait goes on to the document it
    loads, as chromedriver's ``get`` does): True. False when a look failed or took more
    than :data:`LOOK_TIMEOUT` s (Chromium's error page, a dialog). Raises ``Timeout`` past
    the job's deadline, ``JobAborted`` once it is aborted."""
    confirmed = False
    while True:
        job.check()
        try:
            tree, look = devtools.batch([
                ("Page.getFrameTree", {}, session),
                ("Runtime.evaluate", {"expression": _DCL_LOOK, "returnByValue": True}, session),
            ], timeout=LOOK_TIMEOUT)
        except TimeoutError:
            job.check()
            return False
        if isinstance(tree, DevToolsError) or isinstance(look, DevToolsError):
            job.check()
            return False
        frame = tree["frameTree"]["frame"]
        value = (look.get("result") or {}).get("value")
        if frame.get("loaderId") != old_loader:  # the new document is committed
            if frame.get("unreachableUrl"):
                return True  # Chromium's error page (a failure after the commit): the read path tells
            if isinstance(value, list) and len(value) == 2 and (value[1] or value[0] == "complete") \
                    and not navigation_pending(devtools.events, session, frame_id):
                if confirmed:
                    return True
                # One more look first: a navigation the page asked for just before is
                # announced on another of the renderer's channels than the look's answer.
                confirmed = True
                continue
        confirmed = False
        if job.remaining() <= DCL_POLL:
            raise Timeout(f"{url}: wait_until domcontentloaded not reached within the job's "
                          f"{job.timeout:.1f}s")
        time.sleep(DCL_POLL)


def _hand_over(driver, job, why: str, url: str | None) -> None:
    """Leave the navigation to chromedriver, which returns at ``load``: its ``get`` of
    ``url``, or (None) a command that waits for the navigation under way."""
    logger.info("job=%s wait_until domcontentloaded falls back to load: %s", getattr(job, "id", "?"), why)
    job.notes["wait_until"] = f"domcontentloaded fell back to load ({why})"
    if url is not None:
        type(driver).get(driver, url)
    else:
        driver.execute("getCurrentUrl")
