"""The one place that decides what a job's end means (like Selenium's
``remote/errorhandler.py`` ``check_response``): success, the request's fault, the site
class's fault, the page's fault, the browser's fault, or aborted.

It decides from typed information only: exception classes (browserd's own tree,
Selenium's), the navigation's net error as the browser's network events name it
(:class:`browserd.browser.navigation.Document`), and whether the job was aborted or the browser
killed. Callers act on the :class:`Outcome` (its error is the reply, its ``fate`` what
happens to the browser) and never search message strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import urllib3.exceptions
from selenium.common.exceptions import (
    InvalidSelectorException, InvalidSessionIdException, NoSuchWindowException, SessionNotCreatedException,
    TimeoutException, UnexpectedAlertPresentException, WebDriverException,
)

from browserd_client.errors import (
    BadRequest, BrowserdError, ForbiddenUrl, LoadFailed, ProxyFailed, SiteError, Timeout,
)

from .jobs import JobAborted
from .browser.navigation import HTTP_STATUS_ERRORS, MAX_NAVIGATIONS, Document


class Kind(str, enum.Enum):
    """Whose fault a job's end was."""

    SUCCESS = "success"
    REQUEST = "request"    # the client asked for something invalid (a bad selector, a bad param)
    SITE = "site"          # the site class raised, or returned something that is not a Page
    PAGE = "page"          # the page could not be loaded, or did not get ready in time
    BROWSER = "browser"    # the browser or its driver broke: replace it
    ABORTED = "aborted"    # deadline passed or client gone


@dataclass
class Outcome:
    """A job's end as the pool acts on it: ``error`` is the reply's error (None for a
    success; for BROWSER the original exception, which the pool turns into a retry or
    ``browser_error``), ``fate`` what happens to the browser."""

    kind: Kind
    error: BaseException | None = None
    fate: str = "reset"    # "reset" (check the browser in again) or "replace"


PAGE_ERRORS = (LoadFailed, ForbiddenUrl, ProxyFailed, Timeout)
#: Exceptions that say the browser or its driver is gone, whatever the page did: the
#: connection to chromedriver failed (OSError, urllib3's errors), or chromedriver's W3C
#: error code says the session or its window is gone.
BROWSER_ERRORS = (OSError, urllib3.exceptions.HTTPError, InvalidSessionIdException, NoSuchWindowException,
                  SessionNotCreatedException)


def browser_failed(exc: BaseException, browser_alive, browser_responds) -> bool:
    """Does ``exc`` mean the browser broke (not the page, not the site)? Decided by type:
    :data:`BROWSER_ERRORS`; a process of the browser gone (``browser_alive()``, from
    /proc); or chromedriver's generic ``unknown error`` (exactly ``WebDriverException``:
    what it answers when Chromium is unreachable, disconnected, or its tab crashed) from a
    browser that fails a round trip (``browser_responds()``)."""
    if isinstance(exc, BROWSER_ERRORS):
        return True
    if not browser_alive():
        return True
    return type(exc) is WebDriverException and not browser_responds()


def navigation_failed(doc: Document) -> bool:
    """The main document failed with a net error, and no HTTP answer stands for it."""
    if not doc.net_error:
        return False
    return not (doc.net_error in HTTP_STATUS_ERRORS and doc.status is not None)


def classify(exc: BaseException | None, *, job, site_name: str, doc: Document | None,
             browser_killed: bool, browser_alive, browser_responds, load_error, aborted_error) -> Outcome:
    """The outcome of a job that ended with ``exc`` (None: it returned a page).

    ``browser_alive()`` (processes, from /proc) and ``browser_responds()`` (a WebDriver
    round trip) are asked only when needed;
    ``load_error(net_error)`` builds the reply of a failed navigation (the pool asks the
    egress proxy for the cause behind a SOCKS failure); ``aborted_error(job)`` that of an
    aborted job."""
    if job.aborted:
        broken = browser_killed or (exc is not None and not isinstance(exc, (JobAborted, BrowserdError))
                                    and not browser_alive())
        return Outcome(Kind.ABORTED, aborted_error(job), "replace" if broken else "reset")
    if exc is None:
        return Outcome(Kind.SUCCESS)
    if isinstance(exc, BadRequest) and not isinstance(exc, ForbiddenUrl):
        return Outcome(Kind.REQUEST, exc)
    if isinstance(exc, PAGE_ERRORS):
        return Outcome(Kind.PAGE, exc)
    if isinstance(exc, BrowserdError):
        return Outcome(Kind.SITE, exc)
    if isinstance(exc, InvalidSelectorException):
        return Outcome(Kind.REQUEST, BadRequest(f"invalid CSS selector: {first_line(exc)}"))
    if isinstance(exc, TimeoutException):
        if doc is not None and doc.navigations > MAX_NAVIGATIONS:
            return Outcome(Kind.PAGE, LoadFailed(f"{job.url}: navigation loop: the page navigated "
                                                 f"{doc.navigations} times", net_error="navigation_loop"))
        if doc is not None and navigation_failed(doc):
            return Outcome(Kind.PAGE, load_error(doc.net_error))
        return Outcome(Kind.PAGE, Timeout(first_line(exc) or f"timed out after {job.timeout:.1f}s"))
    if isinstance(exc, WebDriverException) and not isinstance(exc, UnexpectedAlertPresentException) \
            and doc is not None and navigation_failed(doc):
        return Outcome(Kind.PAGE, load_error(doc.net_error))
    if browser_failed(exc, browser_alive, browser_responds):
        return Outcome(Kind.BROWSER, exc, "replace")
    return Outcome(Kind.SITE, SiteError(f"site {site_name!r} failed: {type(exc).__name__}: {first_line(exc)}"))


def wrong_page_type(site_name: str, page) -> SiteError:
    """The ``site_error`` of a site whose ``fetch`` returned something else than a Page."""
    return SiteError(f"site {site_name}: fetch must return a Page, got {type(page).__name__}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a reply or a log line (never parsed)."""
    text = getattr(exc, "msg", None) or str(exc)
    text = (text or "").strip()
    return text.splitlines()[0] if text else ""
