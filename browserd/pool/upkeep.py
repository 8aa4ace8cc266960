"""Keeping the pool whole: the reset after each job, replacement (the one way out of
service), recycling, idle health checks and canaries. A mixin of :class:`browserd.pool.Pool`."""

from __future__ import annotations

import logging
import threading
import time


from ..browser import Browser, BrowserStartError, reset_browser
from ..browser.hygiene import ResetUnproven
from ..egress import CONTACTS_KEPT
from ..outcome import first_line as _first_line
from .states import IN_SERVICE, BrowserState

logger = logging.getLogger(__name__)
S = BrowserState
#: Seconds an idle Grid session waits before a command checks it (and keeps it alive).
GRID_KEEPALIVE = 15.0
#: Seconds a reset may take before the browser is replaced instead.
RESET_LIMIT = 10.0
#: Seconds a canary check may take before the browser is killed and replaced.
CANARY_LIMIT = 5.0


class Upkeep:
    """Reset, replace, recycle, health checks; each moves browsers through the state machine."""

    def _schedule_reset(self, browser: Browser, clear_session: bool, urls, clear_cache: bool = True,
                        undo=(), read_log: bool = True) -> None:
        """(The job's thread, its job over.) LEASED -> RESETTING, and the reset runs on a
        reset thread (in the caller's without threads). Nothing happens if the browser
        was taken out of service meanwhile (replaced, or the pool closed)."""
        if clear_session and browser.session_urls:
            urls = list(urls) + sorted(browser.session_urls)
            browser.session_urls = set()
        contacted = self._contacts_of(browser)
        with self._lock:
            if self._table.state(browser) is not S.LEASED:
                return
            self._change(browser, S.RESETTING, "job over")
        if self._resetter is None:  # foreground use without threads (tests, tools)
            self._reset(browser, clear_session, urls, contacted, clear_cache, undo, read_log)
            return
        self._resetter.submit(self._reset, browser, clear_session, urls, contacted, clear_cache, undo, read_log)

    def _contacts_of(self, browser: Browser):
        """Every host:port any window, frame or worker of the browser's job asked for (the
        origins its documents may have written), as a callable the reset calls once they
        are stopped (what they reached while being stopped counts too), before the next
        job's begin_job forgets it; ``[]`` without an egress proxy. The call raises
        ``ResetUnproven`` past ``CONTACTS_KEPT`` host:ports (not all can be cleared by name)."""
        egress = self.egress
        if egress is None:
            return []

        def contacted() -> list:
            if not egress.contacts_complete(browser.id):
                raise ResetUnproven(f"the job asked for more than {CONTACTS_KEPT} host:ports: their "
                                    f"origins cannot all be cleared")
            return egress.contacted(browser.id)
        return contacted

    def _reset(self, browser: Browser, clear_session: bool, urls, contacted=(), clear_cache: bool = True,
               undo=(), read_log: bool = True) -> None:
        """(A RESETTING browser's reset thread.) Undo the job's own changes (``undo``,
        :meth:`JobContext.on_reset`), then reset it under the ``RESET_LIMIT`` watchdog
        (``read_log``: read the frame navigations from the performance log; False when
        the job's thread read it to its end and ``urls`` has them); check it in if it
        is proven clean, else replace it."""
        t0 = time.monotonic()
        handle = self.watchdog.arm(t0 + RESET_LIMIT, browser.kill)
        reason = "reset failed"
        try:
            for step in undo:
                step(browser.driver)
            steps = reset_browser(browser, clear_session, urls, contacted, clear_cache, read_log=read_log)
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
