"""Job validation and URL policy (pure logic)."""

from __future__ import annotations

import pytest

from browserd import config as cfg
from browserd.jobs import Job, check_url, parse_fetch
from browserd_client.errors import BadRequest, ForbiddenUrl, UnknownSite

HTTP = ["http", "https"]


@pytest.mark.parametrize("url", ["http://example.org/", "https://a.b:8443/x?y=1#z", "HTTP://EXAMPLE.ORG"])
def test_http_urls_are_allowed(url):
    assert check_url(url, HTTP) == url


@pytest.mark.parametrize("url", ["file:///etc/passwd", "chrome://settings", "javascript:alert(1)",
                                 "data:text/html,x", "ftp://x/", "view-source:http://x/", "about:blank"])
def test_other_schemes_are_forbidden(url):
    with pytest.raises(ForbiddenUrl):
        check_url(url, HTTP)


@pytest.mark.parametrize("url", [None, "", "   ", 5, "example.org", "http://", "http://x:99999/",
                                 "http://a\nb/", "http://" + "a" * 9000])
def test_malformed_urls_are_bad_requests(url):
    with pytest.raises(BadRequest):
        check_url(url, HTTP)


def test_parse_fetch_caps_timeout_and_checks_site():
    c = cfg.load(env={}, flags={})
    job = parse_fetch({"url": "http://x/", "timeout": 9999}, c, {"generic": None})
    assert job.timeout == c.job_timeout and job.site == "generic"
    with pytest.raises(UnknownSite):
        parse_fetch({"url": "http://x/", "site": "nope"}, c, {"generic": None})
    with pytest.raises(BadRequest, match="unknown fetch arguments"):
        parse_fetch({"url": "http://x/", "extra": 1}, c, {"generic": None})


def test_abort_runs_hooks_once_and_late_hooks_at_once():
    job = Job(url="http://x/", site="generic", timeout=5, params={})
    seen = []
    job.on_abort(lambda r: seen.append(("early", r)))
    assert job.abort("timeout") and not job.abort("client_gone")
    job.on_abort(lambda r: seen.append(("late", r)))
    assert seen == [("early", "timeout"), ("late", "timeout")]


def test_a_sites_timeout_is_its_jobs_default_and_maximum():
    class Slow:
        timeout = 120.0

    class Quick:
        timeout = 5.0

    c = cfg.load(env={}, flags={})  # job_timeout 60
    sites = {"slow": Slow(), "quick": Quick(), "generic": None}
    assert parse_fetch({"url": "http://x/", "site": "slow"}, c, sites).timeout == 120.0
    assert parse_fetch({"url": "http://x/", "site": "slow", "timeout": 500}, c, sites).timeout == 120.0
    assert parse_fetch({"url": "http://x/", "site": "quick", "timeout": 30}, c, sites).timeout == 5.0
    assert parse_fetch({"url": "http://x/", "site": "quick", "timeout": 2}, c, sites).timeout == 2.0
    assert parse_fetch({"url": "http://x/"}, c, sites).timeout == c.job_timeout
