"""The one classifier of a job's end (browserd.outcome): decided from types, never text."""

from __future__ import annotations

import pytest
import urllib3.exceptions
from selenium.common.exceptions import (
    InvalidSelectorException, InvalidSessionIdException, JavascriptException, NoSuchWindowException,
    TimeoutException, WebDriverException,
)

from browserd.jobs import Job
from browserd.browser.navigation import Document
from browserd.outcome import Kind, classify
from browserd_client.errors import BadRequest, LoadFailed, SiteError, Timeout


def outcome(exc, *, alive=True, responds=True, doc=None, killed=False, aborted=None):
    job = Job(url="http://127.0.0.1/x", site="generic", timeout=5.0, params={})
    job.aborted = aborted
    asked = []

    def responds_():
        asked.append("responds")
        return responds

    result = classify(exc, job=job, site_name="generic", doc=doc, browser_killed=killed,
                      browser_alive=lambda: alive, browser_responds=responds_,
                      load_error=lambda net_error: LoadFailed(f"net::{net_error}", net_error=net_error),
                      aborted_error=lambda job: Timeout("deadline"))
    return result, asked


@pytest.mark.parametrize("exc", [
    InvalidSessionIdException("whatever the text"), NoSuchWindowException("x"), ConnectionResetError(),
    urllib3.exceptions.MaxRetryError(None, "/session", None), urllib3.exceptions.ProtocolError("x"),
])
def test_typed_driver_failures_are_the_browsers_fault_without_a_probe(exc):
    result, asked = outcome(exc)
    assert (result.kind, result.fate, asked) == (Kind.BROWSER, "replace", [])


def test_an_unknown_error_is_the_browsers_only_when_the_browser_fails_a_round_trip():
    # The message says "chrome not reachable", but the browser answers: the site's fault.
    result, asked = outcome(WebDriverException("unknown error: chrome not reachable"), responds=True)
    assert result.kind is Kind.SITE and isinstance(result.error, SiteError) and asked == ["responds"]
    # Any message at all: a browser that does not answer broke.
    result, _ = outcome(WebDriverException("unknown error: something new"), responds=False)
    assert (result.kind, result.fate) == (Kind.BROWSER, "replace")


def test_a_specific_webdriver_error_from_a_live_browser_is_the_sites_and_needs_no_probe():
    result, asked = outcome(JavascriptException("tab crashed"))  # a message that once meant "browser"
    assert result.kind is Kind.SITE and asked == []
    result, _ = outcome(JavascriptException("x"), alive=False)
    assert result.kind is Kind.BROWSER


def test_a_timeout_is_the_pages_and_names_the_navigations_net_error():
    result, _ = outcome(TimeoutException("timeout"), doc=Document(net_error="ERR_EMPTY_RESPONSE"))
    assert result.kind is Kind.PAGE and "net::ERR_EMPTY_RESPONSE" in str(result.error)
    result, _ = outcome(TimeoutException("timeout"), doc=Document())
    assert result.kind is Kind.PAGE and isinstance(result.error, Timeout)


def test_request_success_and_aborted():
    assert outcome(None)[0].kind is Kind.SUCCESS
    assert outcome(BadRequest("bad param"))[0].kind is Kind.REQUEST
    result, _ = outcome(InvalidSelectorException("x"))
    assert result.kind is Kind.REQUEST and "invalid CSS selector" in str(result.error)
    result, _ = outcome(WebDriverException("x"), aborted="timeout", alive=True)
    assert (result.kind, result.fate, str(result.error)) == (Kind.ABORTED, "reset", "deadline")
    result, _ = outcome(WebDriverException("x"), aborted="timeout", alive=False)
    assert result.fate == "replace"
