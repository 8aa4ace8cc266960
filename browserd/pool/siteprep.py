"""Readying a browser for a site's job: wiping another site's session, a fresh tab
after another site's hooks, resource blocking, ``setup_browser`` once per browser, then
``before_job``; and ``after_job``. A mixin of :class:`browserd.pool.Pool` (the job's thread)."""

from __future__ import annotations

import logging
import time


from ..browser import Browser, clear_session_state, set_blocking
from ..browser.hygiene import hygiene_of
from ..outcome import first_line as _first_line
from .context import JobContext, apply_options

logger = logging.getLogger(__name__)


def has_hooks(site) -> bool:
    """Does the site class run code of its own on the browser besides ``fetch``?"""
    from ..sites import Site

    return any(getattr(type(site), hook) is not getattr(Site, hook)
               for hook in ("setup_browser", "before_job", "after_job"))


class SitePreparation:
    """The site's hooks around a job, on the job's thread."""

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
        apply_options(run)  # the job's own options, before the site's hooks (issue #14)
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

    @staticmethod
    def _forget_setup(browser: Browser, site_name: str) -> None:
        """``setup_browser`` of ``site_name`` runs again on this browser (its session is gone)."""
        browser.prepared = {key for key in browser.prepared if key[0] != site_name}
