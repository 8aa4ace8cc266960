"""Issue 14: job options through the real daemon, real Chromium and a local server that
records what it received. The daemon is driven through the Python client's job-option
keyword arguments and outputs are read from its FetchResult; where a test is about the
wire itself (a body without a method, a value the client would refuse first, keys absent
from the reply) it sends the wire's ``options`` object or reads the raw reply."""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import threading
from urllib.parse import parse_qs

import pytest

from browserd_client import BadRequest, FrameTooLarge
from browserd_client.errors import ScriptError
from tests.support.option_pages import OptionPages


@pytest.fixture(scope="module")
def pages():
    with OptionPages() as server:
        yield server


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from tests.conftest import running_daemon

    with running_daemon(str(tmp_path_factory.mktemp("state"))) as d:
        yield d


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
        r = c.fetch(pages.url("/echo", k="post"), method="POST", data=form,
                    content_type="application/x-www-form-urlencoded")
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
        c.fetch(pages.url("/echo", k="put"), method="PUT", data=body, content_type="application/octet-stream")
    seen = pages.requests("/echo?k=put")
    assert [(s["method"], s["body"], s["headers"]["content-type"]) for s in seen] == \
        [("PUT", body, "application/octet-stream")]


def test_a_post_carries_the_jobs_headers_cookies_and_user_agent_too(daemon, pages):
    with daemon.client() as c:
        # the wire form: a body without a method, which the daemon sends as a POST
        r = c.fetch(pages.url("/echo", k="post-dressed"), options={
            "body": base64.b64encode(b"a=1").decode(), "headers": {"X-Job": "posted"},
            "cookies": [{"name": "sid", "value": "p1"}], "user_agent": "poster/2"})
    (seen,) = pages.requests("/echo?k=post-dressed")
    assert "METHOD-POST" in r.source and "main_request" not in r.notes
    assert (seen["method"], seen["body"], seen["headers"]["x-job"], seen["headers"]["cookie"],
            seen["headers"]["user-agent"]) == ("POST", b"a=1", "posted", "sid=p1", "poster/2")


def test_headers_cookies_and_user_agent_reach_the_server(daemon, pages):
    with daemon.client() as c:
        r = c.fetch(pages.url("/probe", k="hdr"), headers={"X-Job": "one", "X-Other": "two words"},
                    cookies=[{"name": "sid", "value": "s3cr3t"}, {"name": "pref", "value": "dark", "path": "/probe"}],
                    user_agent="browserd-test/1.0 (like Gecko)")
    seen = pages.requests("/probe?k=hdr")[-1]["headers"]
    print(seen)
    assert seen["x-job"] == "one" and seen["x-other"] == "two words"
    assert sorted(seen["cookie"].split("; ")) == ["pref=dark", "sid=s3cr3t"]
    assert seen["user-agent"] == "browserd-test/1.0 (like Gecko)"
    assert probe(r.source)["userAgent"] == "browserd-test/1.0 (like Gecko)"


def test_viewport_locale_and_timezone_seen_by_the_page(daemon, pages):
    with daemon.client() as c:
        r = c.fetch(pages.url("/probe", k="emu"),
                    viewport={"width": 411, "height": 731, "device_scale_factor": 2, "mobile": True},
                    locale="de-DE", timezone="Asia/Tokyo")
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
            r = c.fetch(pages.url("/probe", k=f"dressed{n}"), headers={"X-Job": "dressed"},
                        user_agent="dressed-agent", viewport={"width": 333, "height": 444},
                        timezone="Pacific/Auckland", locale="fr-FR")
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


# -- outputs ------------------------------------------------------------------------------

def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_evaluate_returns_a_nested_json_value(daemon, pages):
    with daemon.client() as c:
        expression = c.fetch(pages.url("/probe"), evaluate="({title: document.title, n: [1, {deep: true}], x: null})")
        body = c.fetch(pages.url("/probe"), evaluate="const a = await Promise.resolve(41);\nreturn {a: a + 1, s: 'é'}")
    assert expression.value == {"title": "probe", "n": [1, {"deep": True}], "x": None}
    assert body.value == {"a": 42, "s": "é"}
    assert "<pre id=\"probe\">" in expression.source


def test_evaluate_that_throws_is_a_script_error_with_its_message(daemon, pages):
    with daemon.client() as c:
        with pytest.raises(ScriptError) as info:
            c.fetch(pages.url("/probe"), evaluate="throw new TypeError('no such widget')")
        assert info.value.code == "script_error" and "no such widget" in str(info.value)
        assert c.fetch(pages.url("/probe")).title == "probe"  # the browser serves on


def test_evaluate_that_never_returns_is_stopped_before_the_deadline(daemon, pages):
    with daemon.client() as c:
        with pytest.raises(ScriptError) as info:
            c.fetch(pages.url("/probe"), timeout=6, evaluate="while (true) {}")
        print(info.value)
        replaced = c.status()["events"].get("replaced", 0)
        assert "stopped" in str(info.value)
        assert c.fetch(pages.url("/probe")).title == "probe"
        assert c.status()["events"].get("replaced", 0) == replaced == 0


def test_evaluate_of_a_value_json_cannot_hold_is_a_script_error_naming_it(daemon, pages):
    """A cyclic object (or ``window``) is the script's fault: ``script_error``, not the
    site's ``site_error`` with DevTools' "Object reference chain is too long"."""
    with daemon.client() as c:
        with pytest.raises(ScriptError) as info:
            c.fetch(pages.url("/probe"), evaluate="const a = {}; a.self = a; return a")
        assert "circular" in str(info.value).lower()
        assert c.fetch(pages.url("/probe")).title == "probe"


def test_evaluate_of_a_promise_that_never_settles_is_stopped_before_the_deadline(daemon, pages):
    """As README says of a script that still runs: ``script_error`` 1 s before the deadline,
    and the browser serves on (not a ``timeout`` that kills it)."""
    with daemon.client() as c:
        replaced = c.status()["events"].get("replaced", 0)
        with pytest.raises(ScriptError) as info:
            c.fetch(pages.url("/probe"), timeout=6, evaluate="return new Promise(() => {})")
        assert "did not settle" in str(info.value)
        assert c.fetch(pages.url("/probe")).title == "probe"
        assert c.status()["events"].get("replaced", 0) == replaced


def test_no_outputs_are_taken_from_chromes_own_error_page(daemon, pages):
    """A 404 without a body is a result with its status and an empty source; what the tab
    shows is Chromium's page, not the server's: no value or screenshot of it."""
    with daemon.client() as c:
        r = raw(c, pages.url("/empty-404"), evaluate="document.title", screenshot=True)
    assert r["status"] == 404 and r["source"] == ""
    assert "value" not in r and "screenshot" not in r


def test_screenshot_viewport_and_full_page_png_have_the_right_size(daemon, pages):
    viewport = {"width": 640, "height": 480}
    with daemon.client() as c:
        shot = c.fetch(pages.url("/tall"), viewport=viewport, screenshot=True)
        full = c.fetch(pages.url("/tall"), viewport=viewport, screenshot={"type": "png", "full_page": True})
        hidpi = c.fetch(pages.url("/tall"), viewport=dict(viewport, device_scale_factor=2),
                        screenshot={"full_page": True})
        jpeg = c.fetch(pages.url("/tall"), screenshot={"type": "jpeg", "quality": 40})
    sizes = [png_size(r.screenshot) for r in (shot, full, hidpi)]
    print(sizes)
    assert shot.screenshot_type == "png" and sizes[0] == (640, 480)
    assert sizes[1] == (640, 3000)
    assert sizes[2] == (1280, 6000)
    assert jpeg.screenshot_type == "jpeg" and jpeg.screenshot[:3] == b"\xff\xd8\xff"


def test_a_full_page_screenshot_past_the_pixel_budget_is_too_large_and_costs_no_browser(daemon, pages):
    """200000 CSS px tall at 1280 px wide is 256 Mpx: refused before Chromium starts on it
    (it would take the job's whole time, and the browser would be killed)."""
    with daemon.client() as c:
        before = {b["id"]: b["chromium_pid"] for b in c.status()["browsers"]["browsers"]}
        with pytest.raises(FrameTooLarge, match="Mpx"):
            c.fetch(pages.url("/towering"), viewport={"width": 1280, "height": 800},
                    screenshot={"full_page": True})
        assert c.fetch(pages.url("/tall"), screenshot={"full_page": True}).screenshot
        after = {b["id"]: b["chromium_pid"] for b in c.status()["browsers"]["browsers"]}
    assert after == before


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", data))


def test_pdf_starts_with_pdf_and_has_the_right_page_count(daemon, pages):
    with daemon.client() as c:
        three = c.fetch(pages.url("/three-pages"), pdf=True).pdf
        one = c.fetch(pages.url("/probe"), pdf={"format": "Letter", "landscape": True}).pdf
    print(len(three), pdf_pages(three), pdf_pages(one))
    assert three.startswith(b"%PDF") and pdf_pages(three) == 3
    assert one.startswith(b"%PDF") and pdf_pages(one) == 1
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", one)
    assert box and float(box.group(1)) > float(box.group(2))  # landscape: wider than tall


def test_capture_returns_three_xhr_json_responses_with_bodies(daemon, pages):
    with daemon.client() as c:
        r = c.fetch(pages.url("/xhr3"), params={"wait_for": "#done"}, capture=["*/api/item*"])
    got = sorted(r.responses, key=lambda x: x["url"])
    print([(x["url"], x["status"], x["mime_type"], x["size"]) for x in got])
    assert [json.loads(x["body"]) for x in got] == [{"item": n, "nested": {"list": [n, 2 * n]}} for n in (1, 2, 3)]
    assert all(x["status"] == 200 and x["mime_type"] == "application/json" and not x["body_base64"]
               and not x["truncated"] and x["size"] == len(x["body"]) for x in got)
    assert got[0]["headers"]["content-type"] == "application/json"
    assert r.responses_dropped == 0


def test_capture_cuts_bodies_at_capture_max_bytes(daemon, pages):
    with daemon.client() as c:
        r = c.fetch(pages.url("/xhr3"), params={"wait_for": "#done"}, capture=["*/api/item?n=2"],
                    capture_max_bytes=5)
    (only,) = r.responses
    assert only["truncated"] and len(only["body"]) == 5 and only["size"] > 5


def test_cookies_out_returns_the_cookies_the_browser_holds(daemon, pages):
    with daemon.client() as c:
        r = c.fetch(pages.url("/set-cookie"), cookies=[{"name": "mine", "value": "v1", "httpOnly": True}],
                    cookies_out=True)
        after = c.fetch(pages.url("/set-cookie"), cookies_out=True)
    by_name = {x["name"]: x for x in r.cookies}
    print(r.cookies)
    assert by_name["srv"]["value"] == "from-server" and by_name["srv"]["domain"] == "127.0.0.1"
    assert by_name["mine"]["value"] == "v1" and by_name["mine"]["httpOnly"] is True
    assert {x["name"] for x in after.cookies} == {"srv"}  # the last job's cookies are gone


def test_a_job_without_options_gets_no_output_keys(daemon, pages):
    with daemon.client() as c:
        r = raw(c, pages.url("/probe"))
    assert not {"screenshot", "pdf", "value", "responses", "cookies"} & set(r)


# -- wait_until ---------------------------------------------------------------------------

def test_networkidle_waits_for_a_late_xhr(daemon, pages):
    with daemon.client() as c:
        load = c.fetch(pages.url("/late-xhr"))
        idle = c.fetch(pages.url("/late-xhr"), wait_until="networkidle")
        dcl = c.fetch(pages.url("/late-xhr"), wait_until="domcontentloaded")
    print(load.timing, idle.timing)
    assert "LATE-WAITING" in load.source and "LATE-WAITING" in dcl.source
    assert "LATE-DONE" in idle.source


def test_settled_waits_for_the_dom_to_stop_changing(daemon, pages):
    with daemon.client() as c:
        load = c.fetch(pages.url("/mutating"))
        settled = c.fetch(pages.url("/mutating"), wait_until="settled", settle_ms=300)
    print(re.search(r"<p id=\"state\">(.*?)</p>", load.source).group(1),
          re.search(r"<p id=\"state\">(.*?)</p>", settled.source).group(1))
    assert "CHANGING" in load.source
    assert "SETTLED" in settled.source


def test_a_wait_that_never_ends_is_a_timeout_within_the_job_deadline(daemon, pages):
    from browserd_client import Timeout

    with daemon.client() as c:
        with pytest.raises(Timeout) as info:
            c.fetch(pages.url("/mutating"), timeout=3, wait_until="settled", settle_ms=5000)
    print(info.value)


def _fetch_in_thread(daemon, pages, url: str, k: str, **options):
    """Start ``client.fetch(url, **options)`` on a thread; ``pages.note("returned", k)``
    once it returned. Returns the thread and a dict that gets the result or the error."""
    out = {}

    def run():
        try:
            with daemon.client() as c:
                out["result"] = c.fetch(url, **options)
        except Exception as exc:  # noqa: BLE001 - the test reads it
            out["error"] = exc
        pages.note("returned", k)

    thread = threading.Thread(target=run, name=f"fetch-{k}", daemon=True)
    thread.start()
    return thread, out


def fetch_before_release(daemon, pages, url: str, k: str, **options):
    """The result of ``fetch(url, **options)`` for a page whose load /held.gif?k=K holds,
    asserting it returned before the image was released (a bounded join, then the release)."""
    thread, out = _fetch_in_thread(daemon, pages, url, k, **options)
    thread.join(timeout=15)
    returned_before_release = not thread.is_alive()
    pages.release(k)
    thread.join(timeout=30)
    assert returned_before_release, out
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_domcontentloaded_returns_the_dom_while_an_image_still_holds_load(daemon, pages):
    """The server holds the page's image until the test releases it, which the test does
    only once the dcl fetch returned (bounded join): the old code's ``get`` returned at
    ``load``, so it never returned before the release. A ``load`` job of the same page
    returns only after the image was sent (the order of events, no timing)."""
    k = "dcl-held"
    dcl = fetch_before_release(daemon, pages, pages.url("/held-image", k=k), k,
                               timeout=20, wait_until="domcontentloaded")
    assert "HELD-DOM" in dcl.source and dcl.status == 200 and dcl.url.endswith(f"/held-image?k={k}")
    assert pages.requests(f"/held.gif?k={k}"), "the image was asked for before DOMContentLoaded"

    k2 = "load-held"
    thread, out2 = _fetch_in_thread(daemon, pages, pages.url("/held-image", k=k2), k2, timeout=20)
    assert pages.wait_request(f"/held.gif?k={k2}", timeout=15)
    pages.release(k2)
    thread.join(timeout=30)
    load = out2["result"]
    print("dcl timing", dcl.timing, "load timing", load.timing)
    mine = [e for e in pages.order if e[1] in (k, k2)]
    assert mine.index(("returned", k)) < mine.index(("image-sent", k))
    assert mine.index(("image-sent", k2)) < mine.index(("returned", k2))
    assert "HELD-DOM" in load.source and load.status == 200


def test_domcontentloaded_reports_the_documents_status_and_url(daemon, pages):
    ok = fetch_before_release(daemon, pages, pages.url("/echo", k="dcl-ok", held="dcl-ok"), "dcl-ok",
                              timeout=20, wait_until="domcontentloaded")
    missing = fetch_before_release(daemon, pages, pages.url("/no-such-page", k="dcl-404", held="dcl-404"),
                                   "dcl-404", timeout=20, wait_until="domcontentloaded")
    with daemon.client() as c:
        empty = c.fetch(pages.url("/empty-404"), wait_until="domcontentloaded")
    print(ok.status, missing.status, empty.status, missing.url)
    assert (ok.status, ok.ok) == (200, True) and "METHOD-GET" in ok.source
    assert ok.url == pages.url("/echo", k="dcl-ok", held="dcl-ok")
    assert (missing.status, missing.ok) == (404, False) and "not found" in missing.source
    assert missing.url == pages.url("/no-such-page", k="dcl-404", held="dcl-404")
    assert empty.status == 404 and empty.source == ""


def test_domcontentloaded_with_post_sends_the_body(daemon, pages):
    url = pages.url("/echo", k="dcl-post", held="dcl-post")
    r = fetch_before_release(daemon, pages, url, "dcl-post", timeout=20, method="POST", data=b"q=dcl&n=1",
                             headers={"X-Job": "dcl"}, cookies=[{"name": "sid", "value": "d1"}],
                             wait_until="domcontentloaded")
    (seen,) = pages.requests("/echo?k=dcl-post&held=dcl-post")
    assert "METHOD-POST" in r.source and r.status == 200 and "main_request" not in r.notes
    assert (seen["method"], seen["body"], seen["headers"]["x-job"], seen["headers"]["cookie"]) == \
        ("POST", b"q=dcl&n=1", "dcl", "sid=d1")


def test_the_browser_after_a_domcontentloaded_job_serves_a_plain_job(daemon, pages):
    """The dcl job's stopped image does not reach the next job on its browser."""
    k = "dcl-next"
    with daemon.client() as c:
        replaced = c.status()["events"].get("replaced", 0)
        dcl = c.fetch(pages.url("/held-image", k=k), timeout=20, wait_until="domcontentloaded")
        for n in range(6):
            after = c.fetch(pages.url("/probe", k=f"after-dcl{n}"))
            assert after.ok and after.title == "probe" and "wait_until" not in after.notes
            if after.browser == dcl.browser:
                break
        pages.release(k)
        assert after.browser == dcl.browser
        assert "HELD-DOM" in dcl.source and "wait_until" not in dcl.notes
        assert c.status()["events"].get("replaced", 0) == replaced


# -- site classes -------------------------------------------------------------------------

def test_a_site_sees_the_options_applied_before_its_hooks_and_can_read_them(pages, start_daemon):
    from tests.conftest import ROOT

    daemon = start_daemon(1, env={"PYTHONPATH": ROOT + os.pathsep + os.path.join(ROOT, "clients", "python"),
                                  "BROWSERD_SITE_MODULES": "tests.support.option_sites"})
    with daemon.client() as c:
        r = c.fetch(pages.url("/probe", k="site"), site="options_seen",
                    user_agent="site-sees/1", headers={"X-Job": "site"})
    login = pages.requests("/echo?k=site")
    print(r.notes, login[-1]["headers"].get("user-agent") if login else None)
    assert r.notes["tab_user_agent"] == r.notes["option_user_agent"] == "site-sees/1"
    assert [(q["headers"]["user-agent"], q["headers"]["x-job"]) for q in login] == [("site-sees/1", "site")]
    assert probe(r.source)["userAgent"] == "site-sees/1"


# -- bad values ---------------------------------------------------------------------------

def test_a_bad_option_is_a_bad_request_naming_it(daemon, pages):
    with daemon.client() as c:
        with pytest.raises(BadRequest) as info:
            # the wire form: the client would refuse this value before sending it
            c.fetch(pages.url("/echo"), options={"viewport": {"width": 0, "height": 10}})
    assert "option 'viewport'" in str(info.value)


def test_a_time_zone_chromium_does_not_know_is_a_bad_request(daemon, pages):
    with daemon.client() as c:
        with pytest.raises(BadRequest) as info:
            c.fetch(pages.url("/probe"), timezone="Mars/Olympus_Mons")
        assert "option 'timezone'" in str(info.value)
        r = c.fetch(pages.url("/probe", k="after-bad-tz"))
    assert probe(r.source)["timeZone"] != "Mars/Olympus_Mons"


def test_a_cookie_chromium_refuses_is_a_bad_request_naming_the_option(daemon, pages):
    """Well-formed for the validator, refused by Chromium (``Network.setCookies``: "Invalid
    cookie fields"): the request's fault, not the site's ``site_error``."""
    with daemon.client() as c:
        with pytest.raises(BadRequest) as info:
            c.fetch(pages.url("/probe"), cookies=[{"name": "a", "value": "b", "domain": ".."}])
        assert info.value.code == "bad_request"
        assert "option 'cookies'" in str(info.value) and "'..'" in str(info.value)
        assert c.fetch(pages.url("/probe")).title == "probe"


def test_a_page_cannot_hold_its_browser_past_the_deadline_through_the_dcl_look(pages, tmp_path):
    """The dcl look reads ``document.readyState`` in the page's own world, where the page
    can make it a 128 MB string: the look's reply must not hold the daemon (its DevTools
    client reads the whole reply in Python) nor the browser past the job's deadline. On a
    daemon of one browser, the next job is served within its own deadline."""
    from browserd_client.errors import Timeout
    from tests.conftest import running_daemon

    with running_daemon(str(tmp_path), 1) as d, d.client() as c:
        try:
            c.fetch(pages.url("/huge-readystate"), wait_until="domcontentloaded", timeout=5)
        except Timeout:
            pass  # its own job may time out; the next tenant's must not
        after = c.fetch(pages.url("/echo", k="after-huge"), timeout=10)
    assert after.status == 200


def test_domcontentloaded_follows_a_script_redirect_like_load(daemon, pages):
    """A page that redirects by script before its DOMContentLoaded: ``load`` returns the
    target page; ``domcontentloaded`` must not return an empty page (the target's parse
    stopped) nor ``load_failed: net::ERR_ABORTED`` (the redirect stopped). Several tries:
    which of the two it was depended on the race."""
    with daemon.client() as c:
        load = c.fetch(pages.url("/js-redirect"), timeout=20)
        assert "JS-TARGET" in load.source
        for _ in range(4):
            dcl = c.fetch(pages.url("/js-redirect"), wait_until="domcontentloaded", timeout=20)
            assert dcl.url.endswith("/js-target") and "JS-TARGET" in dcl.source, (dcl.url, dcl.source[:200])
