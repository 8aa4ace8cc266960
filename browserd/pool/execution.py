"""Running one job on a leased browser: the job's own thread under a hard deadline,
its named steps (:meth:`Execution._drive`), the outcome and the browser's fate. A mixin
of :class:`browserd.pool.Pool`."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from urllib.parse import urlsplit

from browserd_client.errors import (
    BrowserdError, BrowserError, ForbiddenUrl, FrameTooLarge, LoadFailed, ProxyFailed, Timeout,
)
from browserd_client.protocol import MAX_REPLY_BYTES

from ..browser import DEFAULT_DIALOGS, Browser, recover_tab
from ..browser.docsize import SizeWatch
from ..browser.hygiene import hygiene_of
from ..egress import NET_ERRORS
from ..outcome import Kind, Outcome, classify, first_line as _first_line, wrong_page_type
from ..sites.base import Page
from .checkout import Lease
from .context import JobContext, collect_outputs, end_options
from .siteprep import has_hooks

logger = logging.getLogger(__name__)


#: Seconds after its deadline a job's thread has to return before ``timeout`` is answered anyway.
ABORT_GRACE = 0.5
#: Seconds an aborted job's page load is interrupted before its browser's renderers are killed.
RENDERER_GRACE = 0.2
#: Seconds after an abort before a job whose thread has not returned loses its browser
#: (the answer does not wait for it; on a loaded 2-core machine chromedriver took more
#: than 1 s to report a tab whose renderer was killed).
INTERRUPT_LIMIT = 3.0
#: Seconds of a job kept back from its page-load limit, to report why the load timed out.
LOAD_MARGIN = 1.0


class _Broken(Exception):
    """The browser failed under a job (crash, killed, session gone)."""


class ClientGone(BrowserdError):
    """The client left while its job ran; nobody is waiting for an answer."""

    code = "client_gone"


class _Run:
    """One job on one browser: what its thread produced, and who owns the browser."""

    __slots__ = ("browser", "job", "site", "wiped_owner", "page", "error", "settled", "done", "lock", "forfeited")

    def __init__(self, browser, job, site, wiped_owner=None):
        self.browser, self.job, self.site = browser, job, site
        self.wiped_owner = wiped_owner
        self.page = None
        self.error: BaseException | None = None
        self.settled = threading.Event()  # the job's steps returned (its winding down follows)
        self.done = threading.Event()      # the answer is ready and the browser wound down
        self.lock = threading.Lock()
        self.forfeited = False  # True once the pool gave up on the thread (it replaced the browser)


class Execution:
    """Jobs on browsers: :meth:`run` is the entry point (any connection thread)."""

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
        does: at the deadline the job is aborted (:meth:`_interrupt` stops it); if the
        thread still has not returned ``ABORT_GRACE`` later, the answer is ``timeout``
        anyway, and the browser stays the job's until its thread ends or the interrupt's
        backstop forfeits it."""
        run = _Run(lease.browser, job, site, lease.wiped_owner)
        job.on_abort(lambda reason: self._interrupt(run, reason))
        threading.Thread(target=self._drive, args=(run,), name=f"job-{job.id}", daemon=True).start()
        if not run.done.wait(max(0.0, job.remaining())):
            job.abort("timeout")
            if not run.done.wait(ABORT_GRACE):
                raise Timeout(f"job exceeded its {job.timeout:.1f}s deadline")
        job.clear_abort_hooks()
        if run.error is not None:
            raise run.error
        return run.page

    def _interrupt(self, run: "_Run", reason: str) -> None:
        """An aborted job's escalation, on a thread of its own, none of it waiting on the
        page: stop the page load (``Page.stopLoading``, repeated: an abort can land before
        the navigation it should stop has begun); if the job's steps have not returned
        ``RENDERER_GRACE`` later, kill the browser's renderers (a ``while(true){}`` page:
        the tab crashes, chromedriver answers, the browser is kept); if they still have
        not returned ``INTERRUPT_LIMIT`` after the abort (chromedriver or the site's code
        hangs), forfeit the browser: replaced, the job's thread abandoned."""
        def interrupt():
            t0 = time.monotonic()
            renderers = None
            while time.monotonic() - t0 < INTERRUPT_LIMIT:
                if renderers is None and time.monotonic() - t0 >= RENDERER_GRACE:
                    renderers = run.browser.kill_renderers()
                    logger.warning("job=%s browser=%s did not stop (%s) within %.1fs: %d renderers killed",
                                   run.job.id, run.browser.id, reason, RENDERER_GRACE, renderers)
                else:
                    run.browser.interrupt(timeout=RENDERER_GRACE)
                if run.settled.wait(0.1):
                    return
            with run.lock:
                run.forfeited = not run.done.is_set()
            if run.forfeited:
                self.stats.count("abandoned_jobs")
                logger.error("job=%s browser=%s did not return %.1fs after it was aborted (%s); "
                             "browser replaced, job thread abandoned", run.job.id, run.browser.id,
                             INTERRUPT_LIMIT, reason)
                self.replace(run.browser, f"job {run.job.id} hung past its deadline")
        threading.Thread(target=interrupt, name=f"interrupt-{run.job.id}", daemon=True).start()

    def _drive(self, run: "_Run") -> None:
        """The job's thread: the only one using this browser's driver during the job. A
        flat list of named steps on one :class:`JobContext`; what the job's end means is
        decided by :func:`browserd.outcome.classify`, and its ``fate`` decides the
        browser's: reset and check in, recycle, or replace."""
        ctx = JobContext(run.browser, run.job, run.site, run.wiped_owner)
        try:
            self._prepare(ctx)        # page-load limit, dialogs, downloads, session wipe, options, site hooks
            self._fetch(ctx)          # the site's fetch, the job's outputs, then its after_job
            self._read_result(ctx)    # what the network events say of the main document
        except BaseException as raised:  # noqa: BLE001 - classified below, never swallowed blindly
            ctx.error = raised
            self._read_failed_document(ctx)
        finally:
            run.settled.set()
            outcome = self._classify(ctx)
            self._answer(run, ctx, outcome)
            self._begin_reset(ctx, outcome)
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

    @staticmethod
    def _watch_size(ctx: JobContext):
        """Arm the browser's :class:`~browserd.browser.docsize.SizeWatch` for the job (a
        document past the reply limit aborts it as ``too_large`` at once, not read); the
        watch, or None when it cannot be had (the reply's own size check remains)."""
        browser, job = ctx.browser, ctx.job
        try:
            tab = hygiene_of(browser).tab or browser.driver.current_window_handle
            if browser.size_watch is None:
                browser.size_watch = SizeWatch(browser, MAX_REPLY_BYTES)
            browser.size_watch.watch(tab, lambda size: job.abort("too_large"))
            return browser.size_watch
        except Exception as exc:  # noqa: BLE001 - the reply's own size check remains
            logger.info("job=%s browser=%s no size watch: %s", job.id, browser.id, _first_line(exc))
            return None

    def _fetch(self, ctx: JobContext) -> None:
        """The site's ``fetch`` (which must return a Page), then its ``after_job`` unless
        the job was aborted or the browser killed; raises what they raise."""
        page = None
        ctx.size_watch = self._watch_size(ctx)  # the tab the site loads in (_before may change it)
        try:
            page = ctx.site.fetch(ctx.browser.driver, ctx.job)
            if not isinstance(page, Page):
                raise wrong_page_type(ctx.site.name, page)
            ctx.touched.append(page.url)
            ctx.page = page
            collect_outputs(ctx)      # what the job's options ask for, before after_job (issue #14)
        finally:
            if not ctx.job.aborted and not ctx.browser.killed:
                kept = self._after(ctx, page if isinstance(page, Page) else None)
                ctx.session_kept = kept and ctx.session_kept
        ctx.job.check()

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

    def _begin_reset(self, ctx: JobContext, outcome: Outcome) -> None:
        """The result is read: a browser that will be reset starts its blank navigation now
        (:meth:`~browserd.browser.hygiene.Hygiene.begin_stop`), so the commit overlaps the
        wind-down, the reply and the hand-over to the reset thread. (The wind-down reads no
        performance log: chromedriver would make that read wait for the commit, before
        the reply; the reset reads it.)"""
        browser = ctx.browser
        if outcome.fate == "reset" and not browser.killed and not ctx.job.aborted \
                and not (self.recycle_after and browser.jobs >= self.recycle_after):
            hygiene_of(browser).begin_stop()

    def _wind_down(self, ctx: JobContext) -> None:
        """End the job's downloads (cancel those its NetLog saw running, delete the
        directory; the reset denies new ones, reads the rest of the performance log and
        cancels any begun since) and detach its NetLog; the frames it navigated join the
        origins the reset wipes."""
        browser = ctx.browser
        if ctx.size_watch is not None:
            ctx.size_watch.unwatch()
        if browser.tab_crashed and not browser.killed:  # its renderers were killed (_interrupt)
            self._recover_tab(ctx)
        if ctx.downloads is not None and not browser.killed:
            self._end_downloads(browser, ctx.netlog, ctx.downloads)
        elif ctx.downloads is not None:
            shutil.rmtree(ctx.downloads, ignore_errors=True)
        end_options(ctx)
        ctx.touched += ctx.netlog.frame_urls()
        browser.driver.netlog = None

    def _recover_tab(self, ctx: JobContext) -> None:
        """The tab crashed under the job (its renderers killed): move to a fresh tab, or,
        if the browser cannot, kill it (then :meth:`_dispose` replaces it)."""
        try:
            recover_tab(ctx.browser)
            logger.info("job=%s browser=%s recovered in a fresh tab", ctx.job.id, ctx.browser.id)
        except Exception as exc:  # noqa: BLE001 - any failure: the browser is replaced
            logger.warning("job=%s browser=%s could not recover from its killed renderers: %s",
                           ctx.job.id, ctx.browser.id, _first_line(exc))
            ctx.browser.kill()

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
        if has_hooks(site):  # its hooks may have changed the tab (viewport, UA, ...)
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
    def _aborted_error(job):
        if job.aborted == "client_gone":
            return ClientGone("client went away; job cancelled")
        if job.aborted == "too_large":
            return FrameTooLarge(f"{job.url}: the main document is past the reply limit of {MAX_REPLY_BYTES} bytes")
        return Timeout(f"job exceeded its {job.timeout:.1f}s deadline")
