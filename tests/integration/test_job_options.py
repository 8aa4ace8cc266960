"""Issue 14: job options through the real daemon, real Chromium and a local server that
records what it received. The daemon is driven through the Python client's ``options=``
(the wire's ``options`` object); outputs are read from the raw reply."""

from __future__ import annotations

import base64
import json
import re
import struct
from urllib.parse import parse_qs

import pytest

from browserd_client import BadRequest
from browserd_client.errors import ScriptError
from tests.conftest import run_cli
from tests.support.option_pages import OptionPages


@pytest.fixture(scope="module")
def pages():
    with OptionPages() as server:
        yield server


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from tests.conftest import Daemon, assert_nothing_left

    state = str(tmp_path_factory.mktemp("state"))
    result = run_cli("start", "--browsers", "2", state_dir=state)
    assert result.returncode == 0, result.stderr
    d = Daemon(state, result.stdout)
    yield d
    pids = [p.pid for p in d.processes()]
    assert d.stop().returncode == 0
    assert_nothing_left(state, pids)


def raw(c, url: str, params: dict | None = None, timeout: float = 30, **options) -> dict:
    """The fetch reply's result object as the daemon sent it (the outputs included)."""
    args = {"url": url, "site": "generic", "params": params or {}, "timeout": timeout}
    if options:
        args["options"] = options
    return c._call("fetch", args, reply_timeout=timeout + 10)


def probe(source: str) -> dict:
    return json.loads(re.search(r"<pre id=\"probe\">(.*?)</pre>", source, re.S).group(1).replace("&amp;", "&"))


# -- the request --------------------------------------------------------------------------

def test_post_form_body_and_content_type_reach_the_server(daemon, pages):
    form = b"user=alice&note=a+b%26c"
    with daemon.client() as c:
        r = c.fetch(pages.url("/echo", k="post"), options={
            "method": "POST", "body": base64.b64encode(form).decode(),
            "content_type": "application/x-www-form-urlencoded"})
    seen = pages.requests("/echo?k=post")
    print([(s["method"], s["headers"].get("content-type"), s["body"]) for s in seen])
    assert "METHOD-POST" in r.source and r.status == 200
    assert [s["method"] for s in seen] == ["POST"]
    assert seen[0]["body"] == form
    assert seen[0]["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(seen[0]["body"].decode()) == {"user": ["alice"], "note": ["a b&c"]}


def test_raw_body_with_its_content_type_and_put(daemon, pages):
    body = b'{"a": [1, 2], "bytes": "\\u00e9"}\x00\xff'
    with daemon.client() as c:
        c.fetch(pages.url("/echo", k="put"), options={
            "method": "PUT", "body": base64.b64encode(body).decode(), "content_type": "application/octet-stream"})
    seen = pages.requests("/echo?k=put")
    assert [(s["method"], s["body"], s["headers"]["content-type"]) for s in seen] == \
        [("PUT", body, "application/octet-stream")]


def test_headers_cookies_and_user_agent_reach_the_server(daemon, pages):
    with daemon.client() as c:
        r = c.fetch(pages.url("/probe", k="hdr"), options={
            "headers": {"X-Job": "one", "X-Other": "two words"},
            "cookies": [{"name": "sid", "value": "s3cr3t"}, {"name": "pref", "value": "dark", "path": "/probe"}],
            "user_agent": "browserd-test/1.0 (like Gecko)"})
    seen = pages.requests("/probe?k=hdr")[-1]["headers"]
    print(seen)
    assert seen["x-job"] == "one" and seen["x-other"] == "two words"
    assert sorted(seen["cookie"].split("; ")) == ["pref=dark", "sid=s3cr3t"]
    assert seen["user-agent"] == "browserd-test/1.0 (like Gecko)"
    assert probe(r.source)["userAgent"] == "browserd-test/1.0 (like Gecko)"


def test_viewport_locale_and_timezone_seen_by_the_page(daemon, pages):
    with daemon.client() as c:
        r = c.fetch(pages.url("/probe", k="emu"), options={
            "viewport": {"width": 411, "height": 731, "device_scale_factor": 2, "mobile": True},
            "locale": "de-DE", "timezone": "Asia/Tokyo"})
    seen = probe(r.source)
    headers = pages.requests("/probe?k=emu")[-1]["headers"]
    print(seen, headers.get("accept-language"))
    assert seen["innerWidth"] == 411
    assert seen["language"] == "de-DE" and seen["locale"] == "de-DE"
    assert seen["timeZone"] == "Asia/Tokyo"
    assert headers["accept-language"].startswith("de-DE")


def test_per_job_changes_are_undone_for_the_next_job_on_each_browser(daemon, pages):
    """Both browsers of the pool get a job with every override, then a plain job: the plain
    job sees the browser's defaults again."""
    with daemon.client() as c:
        before = {}
        for _ in range(6):  # a plain look at each browser first
            r = c.fetch(pages.url("/probe", k="plain0"))
            before.setdefault(r.browser, probe(r.source))
            if len(before) == 2:
                break
        assert len(before) == 2, before
        checked = set()  # browsers a plain job ran on right after their dressed job
        for n in range(8):
            r = c.fetch(pages.url("/probe", k=f"dressed{n}"), options={
                "headers": {"X-Job": "dressed"}, "user_agent": "dressed-agent",
                "viewport": {"width": 333, "height": 444}, "timezone": "Pacific/Auckland", "locale": "fr-FR"})
            assert probe(r.source)["innerWidth"] == 333
            for m in range(3):
                after = c.fetch(pages.url("/probe", k=f"after{n}-{m}"))
                seen = probe(after.source)
                headers = pages.requests(f"/probe?k=after{n}-{m}")[-1]["headers"]
                print(r.browser, after.browser, seen)
                assert seen == before[after.browser]
                assert "x-job" not in headers and headers["user-agent"] == seen["userAgent"] != "dressed-agent"
                if after.browser == r.browser:
                    checked.add(r.browser)
                    break
            if checked == set(before):
                break
        assert checked == set(before)


# -- bad values ---------------------------------------------------------------------------

def test_a_bad_option_is_a_bad_request_naming_it(daemon, pages):
    with daemon.client() as c:
        with pytest.raises(BadRequest) as info:
            c.fetch(pages.url("/echo"), options={"viewport": {"width": 0, "height": 10}})
    assert "option 'viewport'" in str(info.value)


def test_a_time_zone_chromium_does_not_know_is_a_bad_request(daemon, pages):
    with daemon.client() as c:
        with pytest.raises(BadRequest) as info:
            c.fetch(pages.url("/probe"), options={"timezone": "Mars/Olympus_Mons"})
        assert "option 'timezone'" in str(info.value)
        r = c.fetch(pages.url("/probe", k="after-bad-tz"))
    assert probe(r.source)["timeZone"] != "Mars/Olympus_Mons"
