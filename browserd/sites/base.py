"""The site-class API (docs/sites.md is the guide).

A site class knows how to get a complete page from one kind of site. For each job it
receives a checked-out Selenium WebDriver (used only by this job's thread) and the Job,
and returns a :class:`Page`. Raise :class:`browserd_client.errors.BadRequest` for bad
params; a Selenium ``TimeoutException`` becomes a ``timeout`` reply, other exceptions
``site_error`` (or ``browser_error`` when the browser itself broke).

Hooks, all optional and all run on the job's thread inside the job's deadline:

- :meth:`setup_browser` once per browser, the first time a browser is lent to this site
  (log in, set a viewport). Runs again after the browser is replaced or recycled, after
  a reload of the site classes, and (for a session site) after its session was wiped.
- :meth:`before_job` / :meth:`after_job` around every :meth:`fetch`.

Policies, as class attributes and overridable per site in the config (``[sites.NAME]``):
``keep_session``, ``concurrency``, ``block``, ``block_urls`` and ``timeout``; both are
validated by the same checks when the class is instantiated (a bad one is a load problem
of the site). The config's ``options`` table arrives as ``self.options``.

Long waits must be bounded by ``job.remaining()``; use :meth:`Site.wait_until`, and call
``job.check()`` between steps of a loop: it raises once the job is aborted (deadline passed,
client gone). The daemon answers at the deadline in any case, but a site that keeps going
keeps its browser busy until it is killed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

from selenium.webdriver.support.ui import WebDriverWait

from browserd_client.errors import BadRequest

from ..site_policy import CLASS_POLICIES, block_patterns, check_policy

@dataclass
class Page:
    """What a site's fetch returns: the rendered ``source``, final ``url`` and ``title``.
    The pool adds what the browser's network events say of the main document (sites need
    not): ``status``, ``headers``, ``mime_type``, ``redirects``, and for a document that
    is not HTML (or a download) its ``body`` bytes. ``charset`` is the document's own."""

    source: str
    url: str
    title: str
    status: int | None = None
    headers: dict = field(default_factory=dict)
    mime_type: str = ""
    redirects: list = field(default_factory=list)
    body: bytes | None = None
    charset: str = ""
    #: What the job's options asked for (issue #14: screenshot, pdf, value, ...), set by
    #: the pool from :attr:`browserd.pool.context.JobContext.outputs`; {} when none.
    outputs: dict = field(default_factory=dict)


class Site:
    """A site class: how to fetch one kind of page, plus its policy (the class attributes
    below, each overridable per instance from the ``[sites.<name>]`` settings).

    One instance serves every job of its site, from many job threads at once: keep no
    per-job state on ``self``. ``driver`` (a Selenium WebDriver) is only ever used by the
    calling job's thread. Hooks run in the order ``setup_browser`` (once per browser),
    ``before_job``, ``fetch``, ``after_job``."""

    #: Name clients use in ``site=...``; unique in a daemon.
    name: ClassVar[str] = ""
    #: One line shown by ``browserd sites``.
    description: ClassVar[str] = ""
    #: Params this site accepts, name -> one-line doc (unknown params are rejected).
    params: ClassVar[dict] = {}
    #: Keep cookies and storage between this site's own jobs. Its browsers then carry its
    #: session: they serve its jobs first, and are wiped before any other site's job.
    keep_session: ClassVar[bool] = False
    #: Keep the HTTP cache between this site's own jobs (after any other site's job, and
    #: before another site's job, it is cleared). Off: every job starts with an empty cache.
    share_cache: ClassVar[bool] = False
    #: At most this many browsers serve this site at once (0: no cap); excess jobs queue.
    concurrency: ClassVar[int] = 0
    #: Resource kinds not to load: any of ``BLOCK_KINDS`` (images, fonts, media, stylesheets).
    block: ClassVar[tuple] = ()
    #: More URL patterns not to load (``*`` is a wildcard), e.g. ``"*://ads.example.com/*"``.
    block_urls: ClassVar[tuple] = ()
    #: JavaScript dialogs: type (alert, confirm, prompt, beforeunload) -> "accept" or
    #: "dismiss"; types not named get the default (accept alert and beforeunload, dismiss
    #: confirm and prompt). Each dialog is reported in the result's notes.
    dialogs: ClassVar[dict] = {}
    #: Default and maximum seconds of this site's jobs (None: the daemon's ``job_timeout``).
    timeout: ClassVar[float | None] = None
    #: The ``[proxies.NAME]`` pool this site's jobs go through unless a job names its own
    #: proxy (None: direct).
    proxy_pool: ClassVar[str | None] = None

    def __init__(self, settings: dict | None = None):
        cls = type(self)
        check_policy({key: getattr(cls, key) for key in CLASS_POLICIES}, f"site class {cls.__qualname__}")
        settings = dict(settings or {})
        check_policy(settings, f"[sites.{self.name}]")
        self.options: dict = settings.pop("options", {})
        for key, value in settings.items():  # instance values shadow the class defaults
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.blocked_patterns = block_patterns(self.block, self.block_urls)
        #: Set by the registry: which load of the site classes this instance belongs to.
        self.generation = 0

    def check_params(self, params: dict) -> None:
        """Raise ``BadRequest`` naming every param of ``params`` this site does not take."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise BadRequest(
                f"site {self.name!r} does not take params {', '.join(sorted(unknown))}"
                f" (it takes: {', '.join(sorted(self.params)) or 'none'})"
            )

    # -- hooks ------------------------------------------------------------------------------

    def setup_browser(self, driver, job) -> None:
        """Once per browser, the first time it is lent to this site (e.g. log in)."""

    def before_job(self, driver, job) -> None:
        """Before every :meth:`fetch` of this site."""

    def after_job(self, driver, job, page: "Page | None") -> None:
        """After every :meth:`fetch` (``page`` is None when it failed). An exception here is
        logged and does not change the job's answer; a session site loses its session."""

    def fetch(self, driver, job) -> Page:  # pragma: no cover - abstract
        """Load ``job.url`` with ``driver`` and return the :class:`Page` (usually through
        :meth:`read_page`). Must finish within ``job.remaining()`` seconds; raise
        ``BadRequest`` for a bad param, ``Timeout`` for a wait that never ended (the
        helpers do both); anything else is reported as the site's error."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def wait_until(driver, job, condition, timeout: float | None = None, message: str = ""):
        """``WebDriverWait(...).until(condition)`` bounded by the job's remaining time
        (and ``timeout``), that gives up at once when the job is aborted."""
        limit = job.remaining() if timeout is None else min(float(timeout), job.remaining())

        netlog = getattr(driver, "netlog", None)

        def check(d):
            """The condition, after checking the job is not aborted and the page not looping."""
            job.check()
            if netlog is not None:  # a page that navigates forever never gets ready
                netlog.check_loop(d, job.url)
            return condition(d)

        return WebDriverWait(driver, max(limit, 0.01), poll_frequency=0.05).until(check, message)

    @staticmethod
    def poll_change(job, settle: float, probe, changed) -> tuple[bool, object]:
        """Call ``probe()`` every 50 ms until ``changed(result)`` holds or ``settle`` seconds
        (bounded by the job) pass: ``(True, result)`` or ``(False, last result)``. For pages
        that grow after a scroll or a click; gives up at once when the job is aborted."""
        until = time.monotonic() + min(settle, max(job.remaining(), 0))
        while True:
            result = probe()
            if changed(result):
                return True, result
            if time.monotonic() >= until:
                return False, result
            job.check()
            time.sleep(0.05)

    @staticmethod
    def read_page(driver, job=None) -> Page:
        """Page source, final URL, title and charset of the current document, in one round
        trip. Read through DevTools' own serialization, which turns an unpaired UTF-16
        surrogate into U+FFFD (chromedriver's cannot serialize one: STYLE trap 19). A
        document replaced while it is read (a navigation in ``onload``) is read again,
        within the job's time."""
        from selenium.common.exceptions import WebDriverException

        expression = ("[document.documentElement ? document.documentElement.outerHTML : '', "
                      "document.URL, document.title, document.characterSet]")
        deadline = time.monotonic() + (max(job.remaining(), 0) if job is not None else 5.0)
        while True:
            try:
                reply = driver.execute("executeCdpCommand", {"cmd": "Runtime.evaluate", "params": {
                    "expression": expression, "returnByValue": True}})["value"]
                value = (reply.get("result") or {}).get("value")
                if isinstance(value, list) and len(value) == 4 and not reply.get("exceptionDetails"):
                    source, url, title, charset = value
                    return Page(source=source, url=url, title=title, charset=charset)
                error = RuntimeError(f"the page could not be read: {reply.get('exceptionDetails')}")
            except WebDriverException as exc:  # the document went away mid-read
                error = exc
            if time.monotonic() >= deadline:
                raise error
            if job is not None:
                job.check()
            time.sleep(0.05)

    @staticmethod
    def param(job, name: str, kind, default=None, *, minimum=None, maximum=None, required=False):
        """``job.params[name]`` checked to be of ``kind`` (``int``, ``float``, ``str``) and within
        bounds, or ``default``; a bad value is a ``bad_request`` that names the param."""
        value = job.params.get(name)
        if value is None:
            if required:
                raise BadRequest(f"param {name!r} is required")
            return default
        numeric = kind in (int, float)
        if (isinstance(value, bool) or (kind is int and not isinstance(value, int))
                or (kind is float and not isinstance(value, (int, float)))
                or (kind is str and (not isinstance(value, str) or not value.strip()))):
            what = {int: "an integer", float: "a number", str: "a non-empty string"}[kind]
            raise BadRequest(f"param {name!r} must be {what}, not {value!r}")
        if numeric and ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
            if maximum is None:
                bound = f">= {minimum}"
            elif minimum is None:
                bound = f"<= {maximum}"
            else:
                bound = f"between {minimum} and {maximum}"
            raise BadRequest(f"param {name!r} must be {bound}, not {value!r}")
        return kind(value)

    def describe(self) -> dict:
        """The site's name, description, params and policy, as ``browserd sites`` shows them."""
        return {"name": self.name, "description": self.description, "params": dict(self.params),
                "keep_session": self.keep_session, "share_cache": self.share_cache, "concurrency": self.concurrency,
                "block": list(self.block), "block_urls": list(self.block_urls), "timeout": self.timeout,
                "proxy_pool": self.proxy_pool, "dialogs": dict(self.dialogs),
                "module": type(self).__module__}
