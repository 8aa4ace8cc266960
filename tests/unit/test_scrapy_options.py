"""The Scrapy middleware's mapping of a Scrapy request to a browserd job, and of the
browser's cookies back into Scrapy's cookie jar (pure logic: real Scrapy objects, no crawl)."""

from __future__ import annotations

import base64
from http.cookiejar import CookieJar
from types import SimpleNamespace

import pytest
from scrapy import FormRequest, Request
from scrapy.http import HtmlResponse
from scrapy.http.cookies import WrappedRequest, WrappedResponse

from browserd_client.options import split_fetch_kwargs
from browserd_client.scrapy_middleware import jar_set_cookies, make_response, outputs_meta, request_job

DEFAULTS = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "Accept-Language": "en"}


def job(request, meta=True, jar=True):
    return request_job(request, meta, timeout=60.0, default_headers=DEFAULTS, jar=jar)


def test_a_form_request_is_a_post_with_its_body_content_type_headers_cookies_and_user_agent():
    request = FormRequest("http://127.0.0.1:8/login", formdata={"user": "ann", "pw": "s3cret"},
                          headers={"User-Agent": "MyBot/1.0 (+http://127.0.0.1/)", "X-Token": "t",
                                   "Cookie": "seen=1; theme=dark", "Accept-Encoding": "gzip",
                                   **DEFAULTS})
    site, timeout, kwargs, sent = job(request, {"screenshot": True, "params": {"wait_for": "#x"}, "timeout": 5})
    assert (site, timeout, sent) == ("generic", 5.0, {"seen", "theme"})
    params, wire = split_fetch_kwargs(kwargs)
    assert params == {"wait_for": "#x"}
    assert wire == {"method": "POST", "body": base64.b64encode(b"user=ann&pw=s3cret").decode(),
                    "content_type": "application/x-www-form-urlencoded", "headers": {"X-Token": "t"},
                    "cookies": [{"name": "seen", "value": "1"}, {"name": "theme", "value": "dark"}],
                    "user_agent": "MyBot/1.0 (+http://127.0.0.1/)", "screenshot": True, "cookies_out": True}


def test_a_header_changed_from_scrapys_default_is_sent_and_a_plain_get_sends_nothing_new():
    _, _, kwargs, _ = job(Request("http://127.0.0.1:8/", headers={"Accept-Language": "de"}), jar=False)
    assert split_fetch_kwargs(kwargs) == ({}, {"headers": {"Accept-Language": "de"}})
    _, _, kwargs, _ = job(Request("http://127.0.0.1:8/"), jar=False)
    assert split_fetch_kwargs(kwargs) == ({}, {})


@pytest.mark.parametrize("meta,message", [
    ({"headers": {"X": "1"}}, "cannot set 'headers' .*Request\\(headers=...\\)"),
    ({"user_agent": "x"}, "cannot set 'user_agent' .*USER_AGENT"),
    ({"screenshots": True}, "unknown keys screenshots"),
    ({"viewport": {"width": 0, "height": 1}}, "option 'viewport'"),
    ({"params": ["wait_for"]}, r"\['params'\] must be a dict"),
    ({"timeout": "soon"}, r"\['timeout'\] must be a positive number"),
])
def test_what_cannot_be_honoured_is_an_error_at_the_request(meta, message):
    with pytest.raises((TypeError, ValueError), match=message):
        job(Request("http://127.0.0.1:8/"), meta)


def test_a_get_with_a_body_is_refused():
    with pytest.raises(ValueError, match="a body needs a method other than GET"):
        job(Request("http://127.0.0.1:8/", body=b"x"))


def jar_after(set_cookies, url, jar=None):
    """A real http.cookiejar, as Scrapy's CookiesMiddleware feeds it from a response."""
    jar = jar or CookieJar()
    request = Request(url)
    response = HtmlResponse(url, headers={"Set-Cookie": set_cookies}, body=b"")
    jar.extract_cookies(WrappedResponse(response), WrappedRequest(request))
    return jar


def test_the_browsers_cookies_reach_the_jar_and_a_dropped_one_expires_there():
    url = "http://127.0.0.1:8/account"
    jar = jar_after(["old=1; Path=/", "gone=1; Path=/"], url)
    lines = jar_set_cookies([{"name": "sid", "value": "abc", "domain": "127.0.0.1", "path": "/", "httpOnly": True},
                             {"name": "old", "value": "2", "domain": "127.0.0.1", "path": "/"},
                             {"name": "tracker", "value": "x", "domain": ".ads.example"}],
                            url, sent={"old", "gone"})
    assert lines == ["sid=abc; Path=/; HttpOnly", "old=2; Path=/", "gone=; Max-Age=0; Path=/"]
    jar = jar_after(lines, url, jar)
    assert sorted((c.name, c.value) for c in jar) == [("old", "2"), ("sid", "abc")]


def test_a_reply_without_cookies_leaves_the_jar_alone():
    assert jar_set_cookies(None, "http://127.0.0.1:8/", sent={"sid"}) is None


def test_a_domain_cookie_keeps_its_domain_and_expiry():
    lines = jar_set_cookies([{"name": "a", "value": "1", "domain": ".example.org", "expires": 2000000000,
                              "secure": True, "sameSite": "Lax"}], "https://www.example.org/", sent=set())
    assert lines == ["a=1; Domain=example.org; Path=/; Expires=Wed, 18 May 2033 03:33:20 GMT; Secure; SameSite=Lax"]


def result(**kw):
    base = dict(source="<html></html>", url="http://127.0.0.1:8/", status=200, body=None, mime_type="text/html",
                headers={"set-cookie": "doc=1", "content-type": "text/html"}, screenshot=None, pdf=None,
                value=None, responses=None, responses_dropped=0, cookies=None)
    return SimpleNamespace(**{**base, **kw})


def test_outputs_land_in_meta_and_the_jar_cookies_replace_the_documents_set_cookie():
    r = result(screenshot=b"PNG", value=None, responses=[{"url": "u"}], responses_dropped=1,
               cookies=[{"name": "sid", "value": "1"}])
    assert outputs_meta(r, evaluated=True) == {"browserd_screenshot": b"PNG", "browserd_value": None,
                                               "browserd_responses": [{"url": "u"}],
                                               "browserd_responses_dropped": 1,
                                               "browserd_cookies": [{"name": "sid", "value": "1"}]}
    assert outputs_meta(result()) == {}
    request = Request("http://127.0.0.1:8/")
    assert make_response(request, r, set_cookies=["sid=1; Path=/"]).headers.getlist("Set-Cookie") == [b"sid=1; Path=/"]
    assert make_response(request, r).headers.getlist("Set-Cookie") == [b"doc=1"]
