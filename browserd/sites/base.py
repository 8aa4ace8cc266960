"""The site-class API.

A site class knows how to get a complete page from one kind of site. It receives a
checked-out Selenium WebDriver (used only by this job's thread) and the Job, and returns
a :class:`Page`. Raise :class:`browserd_client.errors.BadRequest` for bad params; any
Selenium ``TimeoutException`` becomes a ``timeout`` reply, other exceptions ``site_error``
(or ``browser_error`` when the browser itself broke).

Long waits must be bounded by ``job.remaining()``; use :meth:`Site.wait_until`, and call
``job.check()`` between steps of a loop: it raises once the job is aborted (deadline passed,
client gone). The daemon answers at the deadline in any case, but a site that keeps going
keeps its browser busy until it is killed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from selenium.webdriver.support.ui import WebDriverWait

from browserd_client.errors import BadRequest


@dataclass
class Page:
    source: str
    url: str
    title: str


class Site:
    #: Name clients use in ``site=...``; unique in a daemon.
    name: ClassVar[str] = ""
    #: One line shown by ``browserd sites``.
    description: ClassVar[str] = ""
    #: Params this site accepts, name -> one-line doc (unknown params are rejected).
    params: ClassVar[dict] = {}
    #: Keep cookies and storage between this site's own jobs (no reset of session state).
    keep_session: ClassVar[bool] = False

    def __init__(self, settings: dict | None = None):
        self.settings = settings or {}

    def check_params(self, params: dict) -> None:
        unknown = set(params) - set(self.params)
        if unknown:
            raise BadRequest(
                f"site {self.name!r} does not take params {', '.join(sorted(unknown))}"
                f" (it takes: {', '.join(sorted(self.params)) or 'none'})"
            )

    def fetch(self, driver, job) -> Page:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def wait_until(driver, job, condition, timeout: float | None = None, message: str = ""):
        """``WebDriverWait(...).until(condition)`` bounded by the job's remaining time
        (and ``timeout``), that gives up at once when the job is aborted."""
        limit = job.remaining() if timeout is None else min(float(timeout), job.remaining())

        def check(d):
            job.check()
            return condition(d)

        return WebDriverWait(driver, max(limit, 0.01), poll_frequency=0.05).until(check, message)

    @staticmethod
    def read_page(driver) -> Page:
        """Page source, final URL and title of the current document, in one round trip
        (what ``page_source``, ``current_url`` and ``title`` return, at a third of the cost)."""
        source, url, title = driver.execute_script(
            "return [document.documentElement.outerHTML, document.URL, document.title]")
        return Page(source=source, url=url, title=title)

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description, "params": dict(self.params),
                "keep_session": self.keep_session, "module": type(self).__module__}
