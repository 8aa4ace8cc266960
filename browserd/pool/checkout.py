"""Checkout: a first-come first-served queue of waiters, ``busy`` tickets, and the
hand-off of idle browsers (STYLE trap 11). A mixin of :class:`browserd.pool.Pool`: it uses
the pool's lock, browser table and waiters' queue."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass

from browserd_client.errors import Busy, ShuttingDown, Timeout

from ..browser import Browser
from .states import IN_SERVICE, BrowserState

logger = logging.getLogger(__name__)
S = BrowserState
#: Seconds a ``busy`` reply's ticket keeps its holder's place in the queue.
TICKET_TTL = 120.0
#: Bounds of the ``retry_after`` hint of a ``busy`` reply, in seconds.
RETRY_AFTER_MIN, RETRY_AFTER_MAX = 0.5, 30.0


class Waiter:
    """One job queued for a browser: its own event (set when a browser is handed to it, or
    the pool closes), its site's name, cap and ``keep_session``, and ``since``, its place
    in the queue. Read and written under the pool's lock."""
    __slots__ = ("event", "browser", "site", "cap", "keep", "wiped_owner", "since")

    def __init__(self, site, since: float):
        self.since = since  # when its place in the queue began (a ticket's: its first try)
        self.event = threading.Event()
        self.browser: Browser | None = None
        self.site = site.name if site is not None else ""
        self.cap = site.concurrency if site is not None else 0
        self.keep = site.keep_session if site is not None else False
        self.wiped_owner: str | None = None  # the session site whose browser it took

@dataclass
class Lease:
    """A browser checked out for one job, and how long the job waited for it.
    ``wiped_owner``: the browser carried that site's session, which must be wiped first."""

    browser: Browser
    queue_wait: float
    wiped_owner: str | None = None


class Checkout:
    """Lending browsers to jobs (every method that touches the queue or the table holds the pool's lock)."""

    def checkout(self, timeout: float, job=None, site=None, ticket: str | None = None) -> Lease:
        """A browser for one job of ``site``, first come first served; ``busy`` after
        ``timeout``, or at once when ``max_queue`` jobs already wait. A ``busy`` carries a
        ticket: sent back with the retry (``ticket``), it puts the job where it first
        queued, ahead of later newcomers, and past ``max_queue``. A job aborted while it
        waits (its client left) leaves the queue at once."""
        t0 = time.monotonic()
        with self._lock:
            if self._closing:
                raise ShuttingDown("browserd is shutting down")
            since = self._redeem(ticket, t0)
            if since is None and self.max_queue and len(self._waiters) >= self.max_queue:
                raise self._busy(f"queue full: {len(self._waiters)} jobs wait for a browser "
                                 f"(max_queue {self.max_queue})", t0)
            waiter = Waiter(site, t0 if since is None else since)
            self._enqueue(waiter)
            self._dispatch()
            if waiter.browser is not None:
                return Lease(waiter.browser, 0.0, waiter.wiped_owner)
        if job is not None:
            job.on_abort(lambda reason: waiter.event.set())
        waiter.event.wait(max(timeout, 0))
        if job is not None:
            job.clear_abort_hooks()
        with self._lock:
            if waiter.browser is not None:
                return Lease(waiter.browser, time.monotonic() - t0, waiter.wiped_owner)
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass
            if self._closing:
                raise ShuttingDown("browserd is shutting down")
            capped = waiter.cap and self._table.sites_in_use()[waiter.site] >= waiter.cap
            if job is not None and job.aborted:
                raise self._aborted_error(job)
            if job is not None and job.remaining() <= 0:
                raise Timeout(f"job spent its whole {job.timeout:.1f}s waiting for a browser")
            if capped:
                raise self._busy(f"site {waiter.site!r} kept all {waiter.cap} browsers of its "
                                 f"concurrency cap busy for {timeout:.1f}s", waiter.since)
            raise self._busy(f"no browser became free within {timeout:.1f}s "
                             f"({self._table.count(*IN_SERVICE)} browsers, all busy)", waiter.since)

    def _enqueue(self, waiter: Waiter) -> None:
        """(Lock held.) A newcomer goes last; a ticket holder goes back to its place: before
        every waiter that queued after its first try."""
        if not self._waiters or self._waiters[-1].since <= waiter.since:
            self._waiters.append(waiter)
            return
        for i, other in enumerate(self._waiters):
            if other.since > waiter.since:
                self._waiters.insert(i, waiter)
                return

    def _redeem(self, ticket, now: float) -> float | None:
        """(Lock held.) The queue place a valid ticket holds (used up), else None."""
        while self._tickets and now - next(iter(self._tickets.values())) > TICKET_TTL:
            self._tickets.popitem(last=False)
        if not isinstance(ticket, str):
            return None
        return self._tickets.pop(ticket, None)

    def _busy(self, message: str, since: float) -> Busy:
        """(Lock held.) A ``busy`` error with a ticket for the place held since ``since``
        (at most ``max_queue`` tickets are kept: the oldest go first) and a ``retry_after``
        hint: the queue ahead, spread over the browsers, at the typical job's duration."""
        ticket = secrets.token_urlsafe(12)
        self._tickets[ticket] = since
        while len(self._tickets) > max(1, self.max_queue or 1024):
            self._tickets.popitem(last=False)
        per_job = self.stats.typical_job_seconds() or 1.0
        ahead = sum(1 for w in self._waiters if w.since <= since)
        retry_after = per_job * (ahead + 1) / max(1, self._table.count(*IN_SERVICE))
        retry_after = round(min(RETRY_AFTER_MAX, max(RETRY_AFTER_MIN, retry_after)), 2)
        return Busy(message, retry_after=retry_after, ticket=ticket)

    def _dispatch(self) -> None:
        """(Lock held.) Lend idle browsers to waiters, oldest first, skipping waiters whose
        site is at its concurrency cap."""
        if not self._waiters:
            return
        for waiter in list(self._waiters):
            idle = self._table.in_state(S.IDLE)
            if not idle:
                return
            if waiter.cap and self._table.sites_in_use()[waiter.site] >= waiter.cap:
                continue
            browser = self._choose(waiter, idle)
            if browser is None:
                continue  # its own browser is being reset: cheaper to wait than to log in again
            self._waiters.remove(waiter)
            if browser.owner is not None and browser.owner != waiter.site:
                waiter.wiped_owner = browser.owner
                browser.owner = None
            if waiter.keep:
                browser.owner = waiter.site
            self._change(browser, S.LEASED, site=waiter.site)
            waiter.browser = browser
            waiter.event.set()

    def _choose(self, waiter: Waiter, idle: list) -> Browser | None:
        """(Lock held.) Of the ``idle`` browsers (longest idle first): the one carrying
        the waiter's own session, else a clean one, else one carrying another site's
        session. None when the waiter should rather wait for a browser that is only
        being reset."""
        clean = other = None
        for b in idle:
            if b.owner == waiter.site:
                return b
            if b.owner is None:
                clean = clean or b
            else:
                other = other or b
        # Rather than log in again, or wipe another site's session, wait for a browser
        # that is only being reset (tens of milliseconds).
        resetting = {b.owner for b in self._table.in_state(S.RESETTING)}
        if waiter.keep and waiter.site in resetting:
            return None
        if clean is not None:
            return clean
        if None in resetting:
            return None
        return other

    def _checkin(self, browser: Browser) -> None:
        """A started, reset or checked browser becomes IDLE and goes to the oldest waiter
        that may take it; nothing happens if it was taken out of service meanwhile
        (replaced, or the pool closed)."""
        browser.last_used = time.monotonic()
        with self._lock:
            if self._table.state(browser) not in (S.REPLACING, S.RECYCLING, S.DEAD):
                self._change(browser, S.IDLE, "checked in")
            self._dispatch()
