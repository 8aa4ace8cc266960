"""The pool object: its browsers' life from start to close, and its status figures. The
behaviour lives in mixins, one module each (see :mod:`browserd.pool`)."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor


from ..browser import Browser, BrowserStartError, LaunchSpec
from ..stats import Stats
from ..watchdog import Watchdog
from .states import IN_SERVICE, BrowserState, BrowserTable

from .checkout import Checkout, Waiter
from .document import Documents
from .execution import Execution
from .siteprep import SitePreparation
from .upkeep import Upkeep

logger = logging.getLogger(__name__)
S = BrowserState


class Pool(Checkout, Execution, Documents, SitePreparation, Upkeep):
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
        self._waiters: deque[Waiter] = deque()
        self._active_jobs = 0
        self._jobs_done = threading.Condition(self._lock)
        self._closing = False
        self._ids = itertools.count(1)
        self.watchdog = Watchdog()
        self._resetter: ThreadPoolExecutor | None = None

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
