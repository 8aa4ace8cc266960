"""``wait_until``: when a navigation of the job counts as done.

chromedriver's ``get`` returns at the document's ``load`` event (the session's page-load
strategy is "normal"), which already satisfies ``load`` and ``domcontentloaded``. For
``networkidle`` and ``settled`` every ``driver.get`` of the job's site is followed by a
wait (an instance attribute wraps the driver's ``get`` for the job; :func:`remove` drops
it), before the site reads the page:

- ``networkidle``: no request of the tab in flight for :data:`IDLE_MS` ms, from the
  ``Network.*`` events of chromedriver's performance log (the job's ``NetLog``);
- ``settled``: that, and no DOM mutation (a ``MutationObserver`` put in the page) for
  ``settle_ms``.

Each wait is bounded by the job's deadline: past it, ``timeout`` naming what was still
busy.
"""

from __future__ import annotations

import secrets
import time

from browserd_client.errors import Timeout

from .apply import cdp

#: networkidle: no request in flight for this many milliseconds.
IDLE_MS = 500
#: Seconds between two looks at the network and the DOM.
POLL = 0.05


def install(driver, job) -> None:
    """Make the job's ``driver.get`` calls wait for ``job.options.wait_until``."""
    mode = job.options.wait_until
    if mode not in ("networkidle", "settled"):
        return
    plain_get = type(driver).get

    def get(url):
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
