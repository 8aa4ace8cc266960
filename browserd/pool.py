"""The pool of warm browsers: fair checkout, hard deadlines, reset, replacement.

Checkout is first-come first-served: every job queues a waiter of its own, and whenever
a browser comes free the oldest waiter that may take one gets it (a plain ``queue.Queue``
lets the thread that checks in take the browser straight back: STYLE trap 11). A waiter
may not take one while its site uses its ``concurrency`` cap of browsers; later waiters
of other sites are served meanwhile.

Session sites (``keep_session``) own the browsers they used: those keep the site's
cookies and storage, serve the site's jobs first, and are wiped before any other site's
job may use one (only when no clean browser is idle). A job's browser is only used by that job's thread; aborting a job (deadline or
client gone) kills the browser's processes, which makes the blocked WebDriver call fail
at once, and the browser is replaced in the background.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import shutil
import os
import threading
from urllib.parse import urlsplit
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from browserd_client.errors import (
    BrowserdError, BrowserError, Busy, ForbiddenUrl, FrameTooLarge, LoadFailed, ProxyFailed, ShuttingDown,
    Timeout,
)
from browserd_client.protocol import MAX_REPLY_BYTES

from .browser import (
    DEFAULT_DIALOGS, Browser, BrowserStartError, LaunchSpec, allow_downloads, cancel_downloads,
    clear_session_state, deny_downloads, reset_browser, set_blocking,
)
from .job_context import JobContext, apply_options, collect_outputs
from .navigation import MAX_NAVIGATIONS, PAGE_TYPES, Document, NetLog, main_frame, response_body
from .outcome import Kind, Outcome, classify, navigation_failed, wrong_page_type
from .sites.base import Page
from .egress import NET_ERRORS
from .hygiene import ResetUnproven, hygiene_of
from .pool_states import IN_SERVICE, BrowserState, BrowserTable
from .stats import Stats
from .watchdog import Watchdog

logger = logging.getLogger(__name__)

#: A job still running this long after its deadline has its browser killed.
ABORT_GRACE = 0.5
#: Seconds an aborted job's page load is interrupted before its browser is killed.
INTERRUPT_LIMIT = 1.5
#: Seconds of a job kept back from its page-load limit, to report why the load timed out.
LOAD_MARGIN = 1.0
#: Seconds an idle Grid session waits before a command checks it (and keeps it alive).
GRID_KEEPALIVE = 15.0
#: Seconds a reset may take before the browser is replaced instead.
RESET_LIMIT = 10.0
#: Seconds a canary check may take before the browser is killed and replaced.
CANARY_LIMIT = 5.0
#: Seconds a ``busy`` reply's ticket keeps its holder's place in the queue.
TICKET_TTL = 120.0
#: Bounds of the ``retry_after`` hint of a ``busy`` reply, in seconds.
RETRY_AFTER_MIN, RETRY_AFTER_MAX = 0.5, 30.0


class _Waiter:
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


class _Broken(Exception):
    """The browser failed under a job (crash, killed, session gone)."""


class ClientGone(BrowserdError):
    """The client left while its job ran; nobody is waiting for an answer."""

    code = "client_gone"


class _Run:
    """One job on one browser: what its thread produced, and who owns the browser."""

    __slots__ = ("browser", "job", "site", "wiped_owner", "page", "error", "done", "lock", "forfeited")

    def __init__(self, browser, job, site, wiped_owner=None):
        self.browser, self.job, self.site = browser, job, site
        self.wiped_owner = wiped_owner
        self.page = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.forfeited = False  # True once the pool gave up on the thread (it replaced the browser)


S = BrowserState


class Pool:
    """``size`` warm browsers lent to jobs one at a time (see the module's docstring).

    Thread-safety: ``_lock`` protects the browser table (every browser's state, the site
    it is lent to), the waiters' queue, the busy tickets, ``_closing``, ``_active_jobs``
    and ``_probed``; ``_jobs_done`` is a condition on it. Each browser's driver is used
    by one thread at a time: the one its state names (the job's while LEASED, the reset's
    while RESETTING, the canary's while PROBING). ``browser_factory(id, spec, workdir,
    egress=)`` makes a browser (the seam unit tests use to run the pool without Chromium)."""

    def __init__(self, spec: LaunchSpec, size: int, profiles_dir: str | None, stats: Stats,
                 page_load_timeout: float = 30.0, queue_wait: float = 0.0,
                 recycle_after: int = 0, recycle_rss: int = 0, egress=None, max_queue: int = 0,
                 browser_factory=Browser):
        self.spec = spec
        self._browser_factory = browser_factory
        self.egress = egress  # EgressProxy serving local browsers' only way out (None: Grid)
        self.queue_wait = queue_wait  # 0: a job waits for a browser up to its own deadline
        self.max_queue = max_queue    # 0: no limit; else more queued jobs get ``busy``
        self._tickets: OrderedDict[str, float] = OrderedDict()  # busy ticket -> queue place
        #: The canary: a page (the daemon's demo page) idle browsers render every
        #: ``canary_interval`` seconds; one that fails it is replaced (None or 0: off).
        self.canary_url: str | None = None
        self.canary_marker = ""
        self.canary_interval = 0.0
        self._probed: dict[str, float] = {}      # browser id -> when its last canary ended
        self.recycle_after = recycle_after
        self.recycle_rss = recycle_rss
        self.size = size
        self.profiles_dir = profiles_dir
        self.stats = stats
        self.page_load_timeout = page_load_timeout
        self._lock = threading.Lock()
        self._table = BrowserTable(self._lock)  # every browser's state: the only bookkeeping
        self._waiters: deque[_Waiter] = deque()
        self._active_jobs = 0
        self._jobs_done = threading.Condition(self._lock)
        self._closing = False
        self._ids = itertools.count(1)
        self.watchdog = Watchdog()
        self._resetter: ThreadPoolExecutor | None = None

    # -- life ------------------------------------------------------------------------------

    def _new_browser(self) -> Browser:
        """(Lock held.) A new browser, registered as STARTING (not started yet)."""
        browser_id = f"b{next(self._ids)}"
        workdir = os.path.join(self.profiles_dir, browser_id) if self.profiles_dir else None
        browser = self._browser_factory(browser_id, self.spec, workdir, egress=self.egress)
        self._table.add(browser)
        return browser

    def _change(self, browser: Browser, new: BrowserState, reason: str = "", site: str | None = None) -> None:
        """(Lock held.) The one way a browser changes state (checked by the table); wakes
        :meth:`wait_for_jobs` when a reset ends."""
        if self._table.change(browser, new, reason, site) is S.RESETTING:
            self._jobs_done.notify_all()

    def start_browsers(self) -> float:
        """Start ``size`` browsers in parallel, one thread each (all joined on return).
        If any fails, the started ones are stopped and the first error is raised."""
        t0 = time.monotonic()
        with self._lock:
            browsers = [self._new_browser() for _ in range(self.size)]
        with ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="start") as ex:
            futures = [ex.submit(b.start) for b in browsers]
            errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            with self._lock:
                for b in browsers:
                    self._change(b, S.DEAD, "the pool failed to start")
            with ThreadPoolExecutor(max_workers=self.size) as ex:
                for b, e in zip(browsers, errors):
                    if e is None:
                        ex.submit(b.quit)
            raise failed[0] if isinstance(failed[0], BrowserStartError) else BrowserStartError(str(failed[0]))
        for b in browsers:
            with self._lock:
                self._change(b, S.IDLE, "started")
            logger.info("browser=%s started in %.3fs (chromedriver pid %d, port %d)",
                        b.id, b.start_seconds, b.driver_pid, b.port)
        return time.monotonic() - t0

    def held_fds(self) -> list[int]:
        """Descriptors the pool's browsers need across the daemon's fork."""
        fds = [fd for b in self.browsers() for fd in b.held_fds()]
        return fds + (self.egress.listener_fds() if self.egress is not None else [])

    def start_threads(self) -> None:
        """Threads start only after daemonizing (threads do not survive fork)."""
        self.watchdog.start()
        self._resetter = ThreadPoolExecutor(max_workers=max(2, self.size), thread_name_prefix="reset")

    def browsers(self) -> list[Browser]:
        """The browsers in service (idle, leased, resetting, probing), oldest first."""
        with self._lock:
            return self._table.all()

    def drop_http_connections(self) -> None:
        """Close every browser's keep-alive sockets to chromedriver (before the fork)."""
        for b in self.browsers():
            b.drop_http_connections()

    def _wake_waiters_closing(self) -> None:
        """From now on checkouts get ``shutting_down``; queued ones are woken with it."""
        with self._lock:
            self._closing = True
            while self._waiters:
                self._waiters.popleft().event.set()

    def wait_for_jobs(self, timeout: float) -> bool:
        """Wait until no job is running; False if some still run at the timeout."""
        deadline = time.monotonic() + timeout
        with self._jobs_done:
            while self._active_jobs or self._table.count(S.RESETTING):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._jobs_done.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Quit every browser (in parallel), including ones still busy."""
        self._wake_waiters_closing()
        with self._lock:
            browsers = self._table.all()
            for b in browsers:
                self._change(b, S.DEAD, "the pool closes")
        if browsers:
            with ThreadPoolExecutor(max_workers=len(browsers), thread_name_prefix="quit") as ex:
                list(ex.map(lambda b: b.quit(timeout), browsers))

        if self._resetter is not None:
            self._resetter.shutdown(wait=False, cancel_futures=True)
        self.watchdog.stop()
        logger.info("pool closed: %d browsers stopped", len(browsers))

    # -- checkout ----------------------------------------------------------------------------

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
            waiter = _Waiter(site, t0 if since is None else since)
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

    def _enqueue(self, waiter: _Waiter) -> None:
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

    def _choose(self, waiter: _Waiter, idle: list) -> Browser | None:
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

    # -- jobs --------------------------------------------------------------------------------

    def run(self, job, site) -> tuple:
        """Run ``job`` through ``site`` on a browser; return ``(page, info)``.
        A browser that breaks under the job is replaced and the job tried once more on
        another browser (a fetch is idempotent) while time remains."""
        with self._lock:
            self._active_jobs += 1
        try:
            for attempt in (1, 2):
                wait = job.remaining() if not self.queue_wait else min(self.queue_wait, job.remaining())
                lease = self.checkout(wait, job, site, ticket=getattr(job, "ticket", None) if attempt == 1 else None)
                try:
                    page = self._execute(lease, job, site)
                    info = {"browser": lease.browser.id, "queue_wait": lease.queue_wait, "attempts": attempt}
                    return page, info
                except _Broken as exc:
                    if job.aborted or attempt == 2 or job.remaining() <= 1.0:
                        raise BrowserError(f"browser {lease.browser.id} failed: {exc}") from None
                    self.stats.count("retried")
                    logger.warning("job=%s browser=%s broke (%s); retrying on another browser",
                                   job.id, lease.browser.id, exc)
        finally:
            with self._lock:
                self._active_jobs -= 1
                self._jobs_done.notify_all()

    def _execute(self, lease: Lease, job, site):
        """Run the site on a thread of its own and answer by the deadline whatever it
        does: at the deadline the job is aborted (the page load is interrupted); if the
        thread still has not returned ``ABORT_GRACE`` later (chromedriver or the site code
        hangs), the browser is forfeited: killed, replaced, and the thread abandoned."""
        browser = lease.browser
        run = _Run(browser, job, site, lease.wiped_owner)
        job.on_abort(lambda reason: self._interrupt(run, reason))
        threading.Thread(target=self._drive, args=(run,), name=f"job-{job.id}", daemon=True).start()
        if not run.done.wait(max(0.0, job.remaining())):
            job.abort("timeout")
            if not run.done.wait(ABORT_GRACE):
                with run.lock:
                    run.forfeited = not run.done.is_set()
                if run.forfeited:
                    self.stats.count("abandoned_jobs")
                    logger.error("job=%s browser=%s did not return %.1fs after its deadline; "
                                 "browser replaced, job thread abandoned", job.id, browser.id, ABORT_GRACE)
                    self.replace(browser, f"job {job.id} hung past its deadline")
                    raise Timeout(f"job exceeded its {job.timeout:.1f}s deadline")
        job.clear_abort_hooks()
        if run.error is not None:
            raise run.error
        return run.page

    def _interrupt(self, run: "_Run", reason: str) -> None:
        """An aborted job's fast path: stop the page load; kill the browser if the job's
        thread has not finished ``INTERRUPT_LIMIT`` later (the backstop)."""
        def interrupt():
            # Repeated: an abort can land before the navigation it should stop has begun.
            deadline = time.monotonic() + INTERRUPT_LIMIT
            while time.monotonic() < deadline:
                run.browser.interrupt()
                if run.done.wait(0.1):
                    return
            logger.warning("job=%s browser=%s ignored the interrupt (%s) for %.1fs; killing it",
                           run.job.id, run.browser.id, reason, INTERRUPT_LIMIT)
            run.browser.kill()
        threading.Thread(target=interrupt, name=f"interrupt-{run.job.id}", daemon=True).start()

    def _drive(self, run: "_Run") -> None:
        """The job's thread: the only one using this browser's driver during the job. A
        flat list of named steps on one :class:`JobContext`; what the job's end means is
        decided by :func:`browserd.outcome.classify`, and its ``fate`` decides the
        browser's: reset and check in, recycle, or replace."""
        ctx = JobContext(run.browser, run.job, run.site, run.wiped_owner)
        try:
            self._prepare(ctx)        # page-load limit, dialogs, downloads, session wipe, site hooks
            apply_options(ctx)        # the job's own options, before the navigation (issue #14)
            self._fetch(ctx)          # the site's fetch, then its after_job
            self._read_result(ctx)    # what the network events say of the main document
            collect_outputs(ctx)      # what the job's options ask for, after the wait (issue #14)
        except BaseException as raised:  # noqa: BLE001 - classified below, never swallowed blindly
            ctx.error = raised
            self._read_failed_document(ctx)
        finally:
            outcome = self._classify(ctx)
            self._answer(run, ctx, outcome)
            self._wind_down(ctx)
            with run.lock:
                forfeited = run.forfeited
                run.done.set()
            if not forfeited:
                self._dispose(ctx, outcome, run.error)

    def _prepare(self, ctx: JobContext) -> None:
        """Ready the browser for the job: the job's NetLog and dialog policy on the driver,
        the page-load limit, the job's download directory, then the site (:meth:`_before`)."""
        browser, job, site = ctx.browser, ctx.job, ctx.site
        job.check()
        driver = browser.driver
        driver.netlog = ctx.netlog
        driver.dialog_policy = dict(DEFAULT_DIALOGS, **(getattr(site, "dialogs", None) or {}))
        driver.set_page_load_timeout(max(0.05, self._page_load_limit(job)))
        ctx.downloads = self._begin_downloads(browser, job)
        ctx.touched += self._before(ctx)

    def _fetch(self, ctx: JobContext) -> None:
        """The site's ``fetch`` (which must return a Page), then its ``after_job`` unless
        the job was aborted or the browser killed; raises what they raise."""
        page = None
        try:
            page = ctx.site.fetch(ctx.browser.driver, ctx.job)
            if not isinstance(page, Page):
                raise wrong_page_type(ctx.site.name, page)
            ctx.touched.append(page.url)
        finally:
            if not ctx.job.aborted and not ctx.browser.killed:
                kept = self._after(ctx, page if isinstance(page, Page) else None)
                ctx.session_kept = kept and ctx.session_kept
        ctx.job.check()
        ctx.page = page

    def _read_result(self, ctx: JobContext) -> None:
        """The page with its main document's metadata or body (:meth:`_complete`); the
        requests the egress policy refused go to the job's notes."""
        browser = ctx.browser
        ctx.page, ctx.doc = self._complete(ctx, ctx.page)
        browser.jobs += 1
        refused = self.egress.refused(browser.id) if self.egress is not None else []
        if refused:  # subresources, frames, workers the policy kept out: not loaded
            ctx.job.notes["egress_refused"] = refused

    def _read_failed_document(self, ctx: JobContext) -> None:
        """After a failure: what the network events say of the main document (its net
        error names a failed load), unless the job was aborted or the browser killed."""
        if ctx.doc is not None or ctx.job.aborted or ctx.browser.killed:
            return
        try:
            ctx.doc = self._document(ctx.browser, ctx.netlog)
        except Exception as exc:  # noqa: BLE001 - the browser may be gone: classify decides
            logger.debug("job=%s browser=%s: document unreadable: %s", ctx.job.id, ctx.browser.id,
                         _first_line(exc))

    def _classify(self, ctx: JobContext) -> Outcome:
        """The job's :class:`~browserd.outcome.Outcome` (a site's own bug is logged)."""
        browser, job = ctx.browser, ctx.job
        outcome = classify(
            ctx.error, job=job, site_name=ctx.site.name, doc=ctx.doc, browser_killed=browser.killed,
            browser_alive=browser.alive, browser_responds=browser.healthy,
            load_error=lambda net_error: self._load_error(browser, job.url, net_error),
            aborted_error=self._aborted_error)
        if outcome.kind is Kind.SITE and not isinstance(ctx.error, BrowserdError):
            logger.error("job=%s site=%s raised", job.id, ctx.site.name, exc_info=ctx.error)
        return outcome

    @staticmethod
    def _answer(run: "_Run", ctx: JobContext, outcome: Outcome) -> None:
        """What :meth:`_execute` answers: the page, or the outcome's error (a browser's
        failure as ``_Broken``, which the job may retry on another browser)."""
        if outcome.kind is Kind.BROWSER:
            run.error = _Broken(_first_line(ctx.error) or type(ctx.error).__name__)
        elif outcome.error is not None:
            run.error = outcome.error
        else:
            run.page = ctx.page
            if ctx.outputs:
                ctx.page.outputs = ctx.outputs
        dialogs = ctx.netlog.dialogs()
        if dialogs:
            ctx.job.notes["dialogs"] = dialogs

    def _wind_down(self, ctx: JobContext) -> None:
        """End the job's downloads (cancel, deny, delete the directory) and detach its
        NetLog; the frames it navigated join the origins the reset wipes."""
        browser = ctx.browser
        ctx.touched += ctx.netlog.frame_urls()
        if ctx.downloads is not None and not browser.killed:
            self._end_downloads(browser, ctx.netlog, ctx.downloads)
        elif ctx.downloads is not None:
            shutil.rmtree(ctx.downloads, ignore_errors=True)
        browser.driver.netlog = None

    def _dispose(self, ctx: JobContext, outcome: Outcome, error) -> None:
        """The browser's fate after the job: replace it (broken or killed), recycle it
        (``recycle_after``), or reset it (keeping the session of a session site)."""
        browser, job, site = ctx.browser, ctx.job, ctx.site
        if outcome.fate == "replace" or browser.killed:
            self.replace(browser, f"broke under job {job.id}: {error}")
            return
        if self.recycle_after and browser.jobs >= self.recycle_after:
            self.replace(browser, f"served {browser.jobs} jobs (recycle_after)", event="recycled")
            return
        if _has_hooks(site):  # its hooks may have changed the tab (viewport, UA, ...)
            browser.dressed_by = site.name
        browser.cache_of = site.name if site.share_cache else None
        keep = ctx.session_kept and ctx.wiped_owner is None
        if not keep and browser.owner is not None:  # after_job failed, or the wipe never ran
            self._drop_session(browser)
        self._schedule_reset(browser, clear_session=not keep, urls=ctx.touched,
                             clear_cache=not site.share_cache, undo=ctx.undo)

    def _page_load_limit(self, job) -> float:
        """``page_load_timeout``, or the job's whole time when the job asked for more."""
        remaining = job.remaining()
        if remaining > 2 * LOAD_MARGIN:  # a load that times out is reported, not aborted
            remaining -= LOAD_MARGIN
        if job.timeout > self.page_load_timeout:
            return remaining
        return min(self.page_load_timeout, remaining)

    @staticmethod
    def _document(browser: Browser, netlog: NetLog) -> Document:
        """The main document as the network events tell it (read now), and whether the
        main frame shows Chromium's error page (DevTools' ``unreachableUrl``)."""
        netlog.pull(browser.driver)
        frame = main_frame(browser.driver)
        doc = netlog.document(frame.get("id"))
        doc.error_page = bool(frame.get("unreachableUrl"))
        return doc

    def _complete(self, ctx: JobContext, page: Page):
        """The page with what the browser's own network events say of its main document:
        status, headers, MIME type, redirects; a failed navigation raises its net error;
        a document that is not HTML (or a download) comes back as its bytes."""
        browser, job, netlog, downloads = ctx.browser, ctx.job, ctx.netlog, ctx.downloads
        driver = browser.driver
        doc = self._document(browser, netlog)
        if doc.navigations > MAX_NAVIGATIONS:
            raise LoadFailed(f"{job.url}: navigation loop: the page navigated {doc.navigations} times",
                             net_error="navigation_loop")
        if doc.download is not None and downloads is not None:
            body = self._download_body(browser, netlog, doc, downloads, job)
            page = Page(source="", url=doc.url or page.url, title="", body=body)
        elif navigation_failed(doc):
            raise self._load_error(browser, job.url, doc.net_error)
        elif doc.net_error:  # an HTTP error status without a body: Chrome's page is not the server's
            page = Page(source="", url=doc.url or page.url, title="", body=b"")
        elif doc.error_page:
            # No network events (a driver without the log): Chrome's error page is never a result.
            raise self._load_error(browser, job.url, None, error_page=True)
        elif doc.request_id and doc.mime_type.split(";")[0].strip().lower() not in PAGE_TYPES:
            body = response_body(driver, doc.request_id)
            if body is not None:
                page = Page(source="", url=doc.url or page.url, title=page.title, body=body)
        page.status, page.headers, page.mime_type = doc.status, doc.headers, doc.mime_type
        page.redirects = doc.redirects
        if page.body is not None and (len(page.body) + 2) // 3 * 4 > MAX_REPLY_BYTES - (1 << 16):
            raise FrameTooLarge(f"{job.url}: the {doc.mime_type or 'document'} body of {len(page.body)} bytes "
                                f"is past the reply limit of {MAX_REPLY_BYTES} bytes")
        return page, doc

    def _begin_downloads(self, browser: Browser, job) -> str | None:
        """The job's own download directory inside the browser's (the state dir); None
        for a Grid browser (its files are on the node)."""
        if not browser.workdir:
            return None
        directory = os.path.join(browser.workdir, "downloads", f"job-{job.id}")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        allow_downloads(browser.driver, directory)
        return directory

    def _download_body(self, browser: Browser, netlog: NetLog, doc: Document, directory: str, job) -> bytes:
        """Wait (within the job's time) for the main document's download, and read it."""
        guid = doc.download["guid"]
        while True:
            state = netlog.downloads().get(guid, {}).get("state")
            if state == "completed":
                break
            if state == "canceled":
                raise LoadFailed(f"{job.url}: the download was cancelled", net_error="download_canceled")
            if job.remaining() <= 0:
                raise Timeout(f"{job.url}: the download did not finish within the job's {job.timeout:.1f}s")
            job.check()
            time.sleep(0.05)
            netlog.pull(browser.driver)
        path = os.path.join(directory, guid)
        size = os.path.getsize(path)
        if (size + 2) // 3 * 4 > MAX_REPLY_BYTES - (1 << 16):
            raise FrameTooLarge(f"{job.url}: the download of {size} bytes is past the reply limit "
                                f"of {MAX_REPLY_BYTES} bytes")
        with open(path, "rb") as f:
            return f.read()

    def _end_downloads(self, browser: Browser, netlog: NetLog, directory: str) -> None:
        """Cancel the job's downloads still running, deny new ones, delete its directory."""
        try:
            netlog.pull(browser.driver)
            running = [g for g, d in netlog.downloads().items() if d["state"] == "inProgress"]
            cancel_downloads(browser.driver, running)
            deny_downloads(browser.driver)
        except Exception as exc:  # noqa: BLE001 - the reset finds a broken browser
            logger.info("browser=%s ending downloads failed: %s", browser.id, _first_line(exc))
        shutil.rmtree(directory, ignore_errors=True)

    def _before(self, run: JobContext) -> list:
        """Ready the browser for the site: wipe another site's session, set the site's
        resource blocking, run ``setup_browser`` once per browser, then ``before_job``.
        Returns the URL setup_browser left the browser on (its storage is the job's too)."""
        browser, job, site = run.browser, run.job, run.site
        driver = browser.driver
        if self.egress is not None:
            self.egress.begin_job(browser.id, job.upstream)
        if run.wiped_owner is not None:
            t0 = time.monotonic()
            clear_session_state(browser, browser.session_urls)
            browser.session_urls = set()
            self._forget_setup(browser, run.wiped_owner)
            self.stats.count("sessions_wiped")
            logger.info("job=%s browser=%s site=%s: wiped the session of site %s in %.3fs",
                        job.id, browser.id, site.name, run.wiped_owner, time.monotonic() - t0)
            run.wiped_owner = None
        if browser.dressed_by not in (None, site.name):
            # Another site's hooks may have changed the tab (viewport, user agent,
            # emulation): a fresh tab drops every such override; their setup runs again.
            t0 = time.monotonic()
            hygiene_of(browser).fresh_tab()
            browser.prepared = set()
            logger.info("job=%s browser=%s site=%s: fresh tab after site %s's hooks in %.3fs",
                        job.id, browser.id, site.name, browser.dressed_by, time.monotonic() - t0)
        browser.dressed_by = None
        if browser.cache_of not in (None, site.name):  # another site's shared HTTP cache
            hygiene_of(browser).clear_cache()
        browser.cache_of = None
        set_blocking(browser, site.blocked_patterns)
        key = (site.name, site.generation)
        if key not in browser.prepared:
            t0 = time.monotonic()
            site.setup_browser(driver, job)
            browser.prepared.add(key)
            setup_url = driver.current_url
            logger.info("job=%s browser=%s site=%s: setup_browser done in %.3fs",
                        job.id, browser.id, site.name, time.monotonic() - t0)
        else:
            setup_url = None
        site.before_job(driver, job)
        return [setup_url] if setup_url else []

    def _after(self, run: JobContext, page) -> bool:
        """Run the site's ``after_job``; False (and logged) if it raised."""
        try:
            run.site.after_job(run.browser.driver, run.job, page)
            return True
        except Exception as exc:
            logger.warning("job=%s browser=%s site=%s: after_job raised %s: %s; the browser's "
                           "session is wiped", run.job.id, run.browser.id, run.site.name,
                           type(exc).__name__, _first_line(exc))
            return False

    @classmethod
    def _drop_session(cls, browser: Browser) -> None:
        """The browser no longer carries its owner's session (the reset clears it)."""
        owner, browser.owner = browser.owner, None
        cls._forget_setup(browser, owner)

    def _load_error(self, browser: Browser, url: str, net_error: str | None, error_page: bool = False) -> BrowserdError:
        """The error of a failed load: ``forbidden_url`` when the egress policy refused the
        document's connection (the URL or a redirect), else ``load_failed`` with the net
        error as Chromium names it (``net_error``, e.g. ``ERR_TOO_MANY_REDIRECTS``; None:
        only the error page was seen). Behind the egress proxy every failed connection
        reads ERR_SOCKS_CONNECTION_FAILED; the proxy knows why."""
        detail = ""
        if self.egress is not None and (net_error == "ERR_SOCKS_CONNECTION_FAILED" or error_page):
            parts = urlsplit(url)
            try:
                port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
            except ValueError:
                port = None
            cause = self.egress.failure(browser.id, parts.hostname, port)
            if cause is not None and cause[0] == NET_ERRORS["policy"]:
                return ForbiddenUrl(f"{url}: {cause[1]}")
            if cause is not None and cause[0] == NET_ERRORS["proxy"]:
                return ProxyFailed(f"{url}: {cause[1]}")
            if cause is not None:
                net_error, detail = cause[0], f" ({cause[1]})"
        if net_error is None:
            return LoadFailed(f"{url}: the browser showed its error page")
        return LoadFailed(f"{url}: net::{net_error}{detail}", net_error=net_error)

    @staticmethod
    def _forget_setup(browser: Browser, site_name: str) -> None:
        """``setup_browser`` of ``site_name`` runs again on this browser (its session is gone)."""
        browser.prepared = {key for key in browser.prepared if key[0] != site_name}

    @staticmethod
    def _aborted_error(job):
        if job.aborted == "client_gone":
            return ClientGone("client went away; job cancelled")
        return Timeout(f"job exceeded its {job.timeout:.1f}s deadline")

    def _schedule_reset(self, browser: Browser, clear_session: bool, urls, clear_cache: bool = True,
                        undo=()) -> None:
        """(The job's thread, its job over.) LEASED -> RESETTING, and the reset runs on a
        reset thread (in the caller's without threads). Nothing happens if the browser
        was taken out of service meanwhile (replaced, or the pool closed)."""
        if clear_session and browser.session_urls:
            urls = list(urls) + sorted(browser.session_urls)
            browser.session_urls = set()
        # Every host:port any window, frame or worker of the job asked for (read before
        # the next job's begin_job forgets it): the origins its documents may have written.
        contacted = self.egress.contacted(browser.id) if self.egress is not None else []
        with self._lock:
            if self._table.state(browser) is not S.LEASED:
                return
            self._change(browser, S.RESETTING, "job over")
        if self._resetter is None:  # foreground use without threads (tests, tools)
            self._reset(browser, clear_session, urls, contacted, clear_cache, undo)
            return
        self._resetter.submit(self._reset, browser, clear_session, urls, contacted, clear_cache, undo)

    def _reset(self, browser: Browser, clear_session: bool, urls, contacted=(), clear_cache: bool = True,
               undo=()) -> None:
        """(A RESETTING browser's reset thread.) Undo the job's own changes (``undo``,
        :meth:`JobContext.on_reset`), then reset it under the ``RESET_LIMIT`` watchdog;
        check it in if it is proven clean, else replace it."""
        t0 = time.monotonic()
        handle = self.watchdog.arm(t0 + RESET_LIMIT, browser.kill)
        reason = "reset failed"
        try:
            for step in undo:
                step(browser.driver)
            steps = reset_browser(browser, clear_session, urls, contacted, clear_cache)
            ok = not browser.killed
            if ok:
                self.stats.reset_done(time.monotonic() - t0)
                logger.debug("browser=%s reset in %.3fs (%s)", browser.id, time.monotonic() - t0,
                             ", ".join(f"{k} {v:.1f} ms" for k, v in steps.items()))
        except ResetUnproven as exc:
            logger.warning("browser=%s reset could not prove it clean: %s", browser.id, _first_line(exc))
            self.stats.count("reset_unproven")
            reason = f"reset could not prove it clean: {_first_line(exc)}"
            ok = False
        except Exception as exc:
            logger.warning("browser=%s reset failed: %s", browser.id, _first_line(exc))
            ok = False
        finally:
            self.watchdog.disarm(handle)
        if ok:
            self._checkin(browser)
        else:
            self.replace(browser, reason)

    # -- replacement -------------------------------------------------------------------------

    def replace(self, browser: Browser, reason: str, event: str = "replaced", only_from=None) -> bool:
        """The one way a browser leaves service: REPLACING (``event`` "replaced": broken)
        or RECYCLING ("recycled": planned), its processes killed at once, and a new
        browser started in the background (none once the pool closes); ``event`` is what
        status counts.

        Contract: callable from any thread without the pool's lock; idempotent — a
        browser already out of service (replacing, recycling, dead) is left alone and
        False returned, so the job's thread, the watchdog, the reset and the health
        checks may all call it for the same browser. ``only_from``: act only when the
        browser is in one of these states (False otherwise). True when this call took
        the browser out of service. Raises ``IllegalTransition`` for a STARTING browser
        (nobody holds one) or a recycle from a state that does not allow it."""
        target = S.RECYCLING if event == "recycled" else S.REPLACING
        with self._lock:
            state = self._table.state(browser)
            if state not in IN_SERVICE or (only_from is not None and state not in only_from):
                return False
            self._change(browser, target, reason)
            self._probed.pop(browser.id, None)
            closing = self._closing
            new = None if closing else self._new_browser()
            self._dispatch()  # its site's slot is free
        (logger.info if event == "recycled" else logger.warning)("browser=%s %s: %s", browser.id, event, reason)
        self.stats.count(event)
        browser.kill()
        if closing:
            browser.quit(timeout=2)
            with self._lock:
                self._change(browser, S.DEAD, "stopped")
            return True
        threading.Thread(target=self._start_replacement, args=(browser, new),
                         name=f"replace-{browser.id}", daemon=True).start()
        return True

    def _start_replacement(self, old: Browser, new: Browser) -> None:
        """(Its own thread.) Stop ``old``, then start ``new`` (STARTING) until one starts,
        retrying with a fresh browser and exponential backoff; check it in."""
        old.quit(timeout=2)  # reap and remove its directory before starting another
        with self._lock:
            self._change(old, S.DEAD, f"replaced by {new.id}")
        delay = 0.0
        while True:
            if delay:
                time.sleep(delay)
            with self._lock:
                closing = self._closing
            if not closing:
                try:
                    new.start()
                except BrowserStartError as exc:
                    delay = min(delay * 2, 30.0) or 1.0
                    logger.error("replacement for browser=%s failed: %s; retry in %.0fs", old.id, exc, delay)
                    with self._lock:
                        self._change(new, S.DEAD, "start failed")
                        closing = self._closing
                        if not closing:
                            new = self._new_browser()
                    if not closing:
                        continue
                    return
            with self._lock:
                closing = self._closing
                if closing:
                    self._change(new, S.DEAD, "the pool closes")
            if closing:
                new.quit(timeout=2)
                return
            logger.info("browser=%s started in %.3fs (replaces %s)", new.id, new.start_seconds, old.id)
            self._checkin(new)
            return

    def check_idle(self, measure_rss: bool = False) -> int:
        """Replace idle browsers whose processes died, and (with ``measure_rss``) recycle
        idle ones whose process tree grew past ``recycle_rss``; returns how many.
        Called by the arbiter's health thread."""
        with self._lock:
            idle = self._table.in_state(S.IDLE)
        acted = 0
        now = time.monotonic()
        for b in idle:
            if b.spec.grid_url and now - b.last_used > GRID_KEEPALIVE:
                acted += self._check_remote(b)
                continue
            if not b.alive():
                self.replace(b, "found dead while idle")
                acted += 1
            elif measure_rss and self.recycle_rss and b.rss() > self.recycle_rss:
                if self.replace(b, f"process tree RSS over {self.recycle_rss >> 20} MiB", event="recycled",
                                only_from={S.IDLE}):  # one checked out meanwhile waits for the next round
                    acted += 1
        return acted

    def start_canaries(self) -> int:
        """Send idle browsers whose last job or canary is ``canary_interval`` old on a canary
        check (IDLE -> PROBING, on the reset threads). Returns how many."""
        if not self.canary_url or not self.canary_interval or self._resetter is None:
            return 0
        now = time.monotonic()
        due = []
        with self._lock:
            if self._closing:
                return 0
            for b in self._table.in_state(S.IDLE):
                if now - max(b.last_used, self._probed.get(b.id, 0.0)) >= self.canary_interval:
                    self._change(b, S.PROBING, "canary")
                    due.append(b)
        for b in due:
            self._resetter.submit(self._canary, b)
        return len(due)

    def _canary(self, browser: Browser) -> None:
        """Render the canary page and check its marker, under a deadline that kills the
        browser (a frozen renderer or Chromium never answers); then reset and check in, or
        replace."""
        t0 = time.monotonic()
        handle = self.watchdog.arm(t0 + CANARY_LIMIT, browser.kill)
        try:
            problem = self._render_canary(browser, t0)
        finally:
            self.watchdog.disarm(handle)
        if browser.killed and problem is None:
            problem = f"no answer within {CANARY_LIMIT:.0f}s"
        with self._lock:
            self._probed[browser.id] = time.monotonic()
        if problem is not None:
            self.stats.count("canary_failed")
            self.replace(browser, f"canary failed after {time.monotonic() - t0:.1f}s: {problem}")
            return
        logger.debug("browser=%s canary passed in %.3fs", browser.id, time.monotonic() - t0)
        with self._lock:
            if self._table.state(browser) is not S.PROBING:
                return
            self._change(browser, S.RESETTING, "canary passed")
        self._reset(browser, False, [self.canary_url], (), False)  # checks it in, or replaces it

    def _render_canary(self, browser: Browser, t0: float) -> str | None:
        """Load the canary page; None if its marker appeared in time, else what went wrong."""
        from selenium.webdriver.common.by import By

        try:
            if self.egress is not None:
                self.egress.begin_job(browser.id, None)
            driver = browser.driver
            driver.set_page_load_timeout(CANARY_LIMIT)
            driver.get(self.canary_url)
            while True:
                found = driver.find_elements(By.ID, "built")
                if found and self.canary_marker in found[0].text:
                    return None
                if time.monotonic() - t0 > CANARY_LIMIT or browser.killed:
                    return "its marker never appeared"
                time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001 - any failure is the canary's verdict
            return f"{type(exc).__name__}: {_first_line(exc)}"

    def _check_remote(self, browser: Browser) -> int:
        """A Grid session can only be checked by a command; taking it out of the idle
        queue first (PROBING) keeps the driver to one thread. The check also keeps the
        session from the node's idle timeout. Returns 1 if it was found dead (and replaced)."""
        with self._lock:
            if self._table.state(browser) is not S.IDLE:
                return 0
            self._change(browser, S.PROBING, "Grid keep-alive")
        if browser.healthy():
            self._checkin(browser)
            return 0
        self.replace(browser, "Grid session is gone")
        return 1

    def snapshot(self) -> dict:
        """The pool's figures for ``status`` (see the README's status table): counts by
        state, waiters, active jobs, browsers held per site, and one entry per browser in
        service (``state``: "idle", "probing" or "busy")."""
        labels = {S.IDLE: "idle", S.PROBING: "probing"}
        with self._lock:
            t = self._table
            total, idle = t.count(*IN_SERVICE), t.count(S.IDLE)
            return {
                "size": self.size, "total": total, "idle": idle, "busy": total - idle,
                "starting": t.count(S.STARTING), "resetting": t.count(S.RESETTING),
                "waiters": len(self._waiters), "active_jobs": self._active_jobs,
                "sites_in_use": dict(t.sites_in_use()),
                "browsers": [{"id": b.id, "jobs": b.jobs, "state": labels.get(t.state(b), "busy"),
                              "site": t.site_of(b), "session_of": b.owner,
                              "driver_pid": b.driver_pid, "chromium_pid": b.chromium_pid}
                             for b in t.all()],
            }


def _has_hooks(site) -> bool:
    """Does the site class run code of its own on the browser besides ``fetch``?"""
    from .sites import Site

    return any(getattr(type(site), hook) is not getattr(Site, hook)
               for hook in ("setup_browser", "before_job", "after_job"))


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    text = (text or "").strip()
    return text.splitlines()[0] if text else ""
