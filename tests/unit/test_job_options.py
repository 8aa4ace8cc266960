"""Validation of the job options (issue 14): each bad value is one clear ``bad_request``
naming the option; good values come out normalized; no option: nothing to do."""

from __future__ import annotations

import base64

import pytest

from browserd import config as cfg
from browserd.jobs import parse_fetch
from browserd.joboptions.validate import JobOptions, validate
from browserd_client.errors import BadRequest

URL = "http://shop.example:8080/login?x=1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD = [
    ("method", "GET POST"), ("method", 7), ("method", "CONNECT"), ("method", ""),
    ("body", "not base64!"), ("body", 12),
    ("content_type", "text/plain"),  # without a body
    ("headers", ["X-A: b"]), ("headers", {"Bad Name": "x"}), ("headers", {"X-A": "a\r\nInjected: 1"}),
    ("headers", {"X-A": 5}), ("headers", {"Host": "evil"}), ("headers", {"Content-Length": "3"}),
    ("cookies", {"name": "a", "value": "b"}), ("cookies", [{"name": "", "value": "b"}]),
    ("cookies", [{"name": "a"}]), ("cookies", [{"name": "a", "value": "b;c"}]),
    ("cookies", [{"name": "a", "value": "b", "path": "nope"}]),
    ("cookies", [{"name": "a", "value": "b", "sameSite": "Sometimes"}]),
    ("cookies", [{"name": "a", "value": "b", "sameSite": "None"}]),
    ("cookies", [{"name": "a", "value": "b", "expires": "tomorrow"}]),
    ("cookies", [{"name": "a", "value": "b", "colour": "red"}]),
    ("cookies", [{"name": "a", "value": "b", "domain": "x.org/path"}]),
    ("cookies", [{"name": "a\x1b[2J", "value": "b"}]), ("cookies", [{"name": "a", "value": "b\x07"}]),
    ("cookies", [{"name": "a", "value": "b", "domain": "x\u2028y"}]),
    # refused by Chromium's network service: the navigation would fail (ERR_INVALID_ARGUMENT)
    # and the reset replace the browser
    ("headers", {"Proxy-Authorization": "Basic eDp5"}), ("headers", {"proxy-connection": "close"}),
    ("headers", {"Keep-Alive": "5"}), ("headers", {"Upgrade": "websocket"}), ("headers", {"TE": "trailers"}),
    ("headers", {"Trailer": "X"}), ("headers", {"Set-Cookie": "a=b"}), ("headers", {"Cookie2": "a"}),
    ("headers", {"X-HTTP-Method-Override": "GET, TRACE"}),
    ("user_agent", ""), ("user_agent", "a\nb"), ("user_agent", 1),
    ("viewport", "1280x800"), ("viewport", {"width": 0, "height": 800}), ("viewport", {"width": 1280}),
    ("viewport", {"width": 1280.5, "height": 800}), ("viewport", {"width": True, "height": 800}),
    ("viewport", {"width": 1280, "height": 800, "device_scale_factor": 0}),
    ("viewport", {"width": 1280, "height": 800, "mobile": "yes"}),
    ("viewport", {"width": 1280, "height": 800, "depth": 3}),
    ("locale", "de_DE!"), ("locale", 5), ("timezone", "Asia/../Tokyo"), ("timezone", ""),
    ("wait_until", "idle"), ("settle_ms", -1), ("settle_ms", 1.5), ("settle_ms", True),
    ("screenshot", "yes"), ("screenshot", {"type": "gif"}), ("screenshot", {"type": "png", "quality": 50}),
    ("screenshot", {"type": "jpeg", "quality": 101}), ("screenshot", {"full_page": 1}),
    ("pdf", {"format": "B5"}), ("pdf", {"landscape": "no"}), ("pdf", 1),
    ("evaluate", ""), ("evaluate", "   "), ("evaluate", 3),
    ("capture", "*/api/*"), ("capture", []), ("capture", [3]),
    ("capture_max_bytes", -1), ("capture_max_bytes", "1M"),
    ("cookies_out", "yes"),
]


@pytest.mark.parametrize("option,value", BAD, ids=[f"{o}={v!r}"[:60] for o, v in BAD])
def test_a_bad_value_is_a_bad_request_naming_the_option(option, value):
    with pytest.raises(BadRequest) as info:
        validate({option: value}, URL)
    print(info.value)
    assert f"option '{option}" in str(info.value)


def test_get_or_head_with_a_body_is_a_bad_request_naming_body():
    for method in ("GET", "HEAD"):
        with pytest.raises(BadRequest, match="option 'body'"):
            validate({"method": method, "body": b64(b"x=1")}, URL)


def test_no_new_option_means_nothing_to_do():
    assert validate({}, URL) is None
    assert validate({"proxy": "socks5://127.0.0.1:1"}, URL) is None
    assert validate({"screenshot": None}, URL) is None


def test_a_body_alone_is_a_form_post():
    o = validate({"body": b64(b"a=1&b=2")}, URL)
    assert (o.method, o.body, o.content_type) == ("POST", b"a=1&b=2", "application/x-www-form-urlencoded")
    assert o.main_request and o.overrides and not o.outputs


def test_values_come_out_normalized():
    o = validate({"method": "put", "body": b64(b"\x00\xff"), "content_type": "application/octet-stream",
                  "headers": {"X-A": "1"}, "cookies": [{"name": "sid", "value": "v", "secure": True,
                                                         "sameSite": "None", "expires": 2000000000}],
                  "viewport": {"width": 390, "height": 844, "device_scale_factor": 3, "mobile": True},
                  "locale": "de-DE", "timezone": "America/Argentina/Buenos_Aires",
                  "wait_until": "settled", "settle_ms": 0, "screenshot": True,
                  "pdf": {"format": "Letter", "landscape": True}, "evaluate": "  return 1  ",
                  "capture": ["*/api/*"], "capture_max_bytes": 0, "cookies_out": True}, URL)
    assert o.method == "PUT" and o.body == b"\x00\xff"
    assert o.cookies == [{"name": "sid", "value": "v", "domain": "shop.example", "path": "/",
                          "secure": True, "sameSite": "None", "expires": 2000000000.0}]
    assert o.viewport == {"width": 390, "height": 844, "device_scale_factor": 3.0, "mobile": True}
    assert o.screenshot == {"type": "png", "quality": None, "full_page": False}
    assert o.pdf == {"format": "Letter", "landscape": True, "print_background": False}
    assert o.evaluate == "return 1" and o.capture == ("*/api/*",) and o.settle_ms == 0
    assert o.outputs and o.overrides


def test_parse_fetch_puts_the_options_on_the_job_and_names_unknown_ones():
    c = cfg.load(env={}, flags={})
    job = parse_fetch({"url": URL, "options": {"user_agent": "ua/1"}}, c, {"generic": None})
    assert isinstance(job.options, JobOptions) and job.options.user_agent == "ua/1"
    assert parse_fetch({"url": URL}, c, {"generic": None}).options is None
    with pytest.raises(BadRequest, match="unknown job options: colour"):
        parse_fetch({"url": URL, "options": {"colour": "red"}}, c, {"generic": None})
    with pytest.raises(BadRequest, match="option 'wait_until'"):
        parse_fetch({"url": URL, "options": {"wait_until": "never"}}, c, {"generic": None})


def test_in_flight_counts_requests_begun_and_not_ended():
    from browserd.joboptions.wait import in_flight

    events = [("Network.requestWillBeSent", {"requestId": "1"}), ("Network.requestWillBeSent", {"requestId": "2"}),
              ("Network.requestWillBeSent", {"requestId": "1"}),  # a redirect hop: same request
              ("Network.loadingFinished", {"requestId": "1"}), ("Network.requestWillBeSent", {"requestId": "3"}),
              ("Network.loadingFailed", {"requestId": "3"}), ("Page.frameNavigated", {})]
    assert in_flight(events) == {"2"}
    assert in_flight(events + [("Network.loadingFinished", {"requestId": "2"})]) == set()


@pytest.mark.parametrize("a,b,same", [
    ("http://h:1", "http://h:1/", True), ("http://H:1/x?a=1#frag", "http://h:1/x?a=1", True),
    ("http://h/x?a=1", "http://h/x?a=2", False), ("http://h/x", "https://h/x", False)])
def test_the_main_request_is_recognized_by_its_url(a, b, same):
    from browserd.joboptions.apply import _same_url

    assert _same_url(a, b) is same


class _FakeDriver:
    """Answers ``executeCdpCommand`` from a table; its netlog holds canned events."""

    def __init__(self, events, answers):
        from browserd.browser.navigation import NetLog

        self.netlog = NetLog()
        self.netlog.events = list(events)
        self.netlog.pull = lambda driver: None
        self.answers = answers
        self.calls = []

    def execute(self, command, params):
        assert command == "executeCdpCommand"
        self.calls.append((params["cmd"], params["params"]))
        answer = self.answers[params["cmd"]]
        return {"value": answer(params["params"]) if callable(answer) else answer}


def _response(rid, url, mime="application/json"):
    return [("Network.responseReceived", {"requestId": rid, "response": {
                "url": url, "status": 200, "headers": {"Content-Type": mime}, "mimeType": mime}}),
            ("Network.loadingFinished", {"requestId": rid})]


def test_capture_keeps_matching_finished_responses_cuts_bodies_and_counts_the_rest(monkeypatch):
    from types import SimpleNamespace

    from browserd.joboptions import outputs

    monkeypatch.setattr(outputs, "MAX_RESPONSES", 2)
    events = (_response("1", "http://h/api/a") + _response("2", "http://h/page.css", "text/css")
              + _response("3", "http://h/api/b", "image/png") + _response("4", "http://h/api/c")
              + [("Network.responseReceived", {"requestId": "5", "response": {"url": "http://h/api/unfinished"}})])
    bodies = {"1": {"body": "0123456789", "base64Encoded": False},
              "3": {"body": base64.b64encode(b"\x89PNG....").decode(), "base64Encoded": True}}
    driver = _FakeDriver(events, {"Network.getResponseBody": lambda p: bodies[p["requestId"]]})
    job = SimpleNamespace(url=URL, options=validate({"capture": ["*/api/*"], "capture_max_bytes": 4}, URL))
    responses, dropped = outputs.capture(driver, job)
    assert dropped == 1  # /api/c: past the count cap; /api/unfinished never finished
    assert [(r["url"], r["body"], r["body_base64"], r["size"], r["truncated"]) for r in responses] == [
        ("http://h/api/a", "0123", False, 10, True),
        ("http://h/api/b", base64.b64encode(b"\x89PNG").decode(), True, 8, True)]
    assert responses[0]["headers"] == {"content-type": "application/json"}


def test_evaluate_runs_a_script_that_does_not_compile_as_an_async_function_body():
    from browserd.joboptions.outputs import evaluate

    compiles = {"1 + 1": {}, "return 2": {"exceptionDetails": {"text": "Illegal return statement"}}}
    driver = _FakeDriver([], {"Runtime.compileScript": lambda p: compiles[p["expression"]],
                              "Runtime.evaluate": {"result": {"value": 2}}, "Runtime.releaseObjectGroup": {}})
    evaluate(driver, "1 + 1")
    evaluate(driver, "return 2")
    sent = [p["expression"] for cmd, p in driver.calls if cmd == "Runtime.evaluate"]
    assert sent == ["1 + 1", "(async () => {\nreturn 2\n})()"]


def test_evaluate_that_throws_is_a_script_error_with_the_exception_text():
    from browserd.joboptions.outputs import evaluate
    from browserd_client.errors import ScriptError

    driver = _FakeDriver([], {"Runtime.compileScript": {}, "Runtime.releaseObjectGroup": {}, "Runtime.evaluate": {"exceptionDetails": {
        "text": "Uncaught", "exception": {"description": "TypeError: boom\n    at <anonymous>:1:7"}}}})
    with pytest.raises(ScriptError, match=r"^TypeError: boom$"):
        evaluate(driver, "boom()")


def test_networkidle_is_not_reached_while_requests_begin_and_end_between_two_looks():
    """Each look at the log finds a request that began and ended since the last one (none
    in flight at the look): the network was never quiet, so the wait goes on until the
    requests stop. (A sampled "in flight now?" ended the wait after IDLE_MS.)"""
    from types import SimpleNamespace

    from browserd.joboptions import wait

    busy_looks, looks = 20, []  # 20 looks are past IDLE_MS: each sleeps POLL
    driver = _FakeDriver([], {})

    def pull(_driver):
        looks.append(len(looks))
        n = len(looks)
        if n <= busy_looks:
            driver.netlog.events += [("Network.requestWillBeSent", {"requestId": f"r{n}"}),
                                     ("Network.loadingFinished", {"requestId": f"r{n}"})]
        return True

    driver.netlog.pull = pull
    job = SimpleNamespace(options=validate({"wait_until": "networkidle"}, URL), check=lambda: None,
                          remaining=lambda: 60.0, url=URL, timeout=60.0)
    assert busy_looks * wait.POLL * 1000 > wait.IDLE_MS
    wait.wait(driver, job, "networkidle")
    assert len(looks) > busy_looks  # returned only once the log stayed quiet


def test_capture_stops_reading_bodies_once_they_pass_the_reply_limit(monkeypatch):
    """100 bodies of capture_max_bytes (64 MiB) each would be 6 GiB held before the reply's
    size check: the limit is checked body by body, and no body is read past it."""
    from types import SimpleNamespace

    from browserd.joboptions import outputs
    from browserd_client.errors import FrameTooLarge

    monkeypatch.setattr(outputs, "MAX_REPLY_BYTES", 150 + len(URL))
    monkeypatch.setattr(outputs, "REPLY_MARGIN", 0)
    events = [e for n in range(5) for e in _response(str(n), f"http://h/api/{n}")]
    driver = _FakeDriver(events, {"Network.getResponseBody": {"body": "x" * 60, "base64Encoded": False}})
    job = SimpleNamespace(url=URL, options=validate({"capture": ["*"]}, URL))
    with pytest.raises(FrameTooLarge, match="capture"):
        outputs.capture(driver, job)
    assert [cmd for cmd, _ in driver.calls].count("Network.getResponseBody") == 3  # 180 > 150: stop


def test_a_full_page_screenshot_past_the_pixel_budget_is_too_large_before_it_is_taken():
    from browserd.joboptions import outputs
    from browserd_client.errors import FrameTooLarge

    def driver(height, scale):
        return _FakeDriver([], {"Page.getLayoutMetrics": {"cssContentSize": {"width": 1000, "height": height}},
                                "Runtime.evaluate": {"result": {"value": [1000, 800, scale]}},
                                "Page.captureScreenshot": {"data": "iVBORw0KGgo="}})

    spec = {"type": "png", "quality": None, "full_page": True}
    taken = driver(60_000, 1)
    assert outputs.screenshot(taken, spec)["base64"] == "iVBORw0KGgo="  # 60 Mpx: under the budget
    for height, scale in ((100_000, 1), (20_000, 2)):  # 100 Mpx; 20 Mpx CSS at scale 2: 80 Mpx
        refused = driver(height, scale)
        with pytest.raises(FrameTooLarge, match="Mpx"):
            outputs.screenshot(refused, spec)
        assert "Page.captureScreenshot" not in [name for name, _ in refused.calls]


class _LoadingTab:
    """A tab's DevTools session as :func:`browserd.joboptions.wait.get_until_dcl` sees it:
    ``looks`` answers, in order, ``(loaderId, readyState, dcl_done)`` of the frame's
    document per look; the document before the navigation has loaderId "old"."""

    def __init__(self, looks):
        self.looks = list(looks)
        self.sent = []
        self.keep, self.events = frozenset(), []

    def send(self, calls):
        self.sent += [method for method, _, _ in calls]

    def call(self, method, params=None, session=None, timeout=None):
        self.sent.append(method)
        if method == "Page.getFrameTree":
            return {"frameTree": {"frame": {"id": "T", "loaderId": "old"}}}
        if method == "Page.navigate":
            return {"frameId": "T", "loaderId": "new"}
        return {}

    def batch(self, calls, timeout=None):
        self.sent.append("look")
        loader, state, done = self.looks.pop(0)
        return [{"frameTree": {"frame": {"id": "T", "loaderId": loader}}},
                {"result": {"value": [state, done]}}]


def _dcl_job():
    from types import SimpleNamespace

    return SimpleNamespace(id="j1", url=URL, timeout=60.0, notes={}, check=lambda: None,
                           remaining=lambda: 60.0, options=validate({"wait_until": "domcontentloaded"}, URL))


def test_domcontentloaded_waits_for_the_new_documents_dcl_not_the_old_documents_state(monkeypatch):
    """Before the commit the tab still shows the old document, "complete": not done. The
    new one is done once its DOMContentLoaded handlers ran; then its loads are stopped."""
    from types import SimpleNamespace

    from browserd.joboptions import wait

    tab = _LoadingTab([("old", "complete", True), ("old", "complete", True), ("new", "loading", False),
                       ("new", "interactive", False), ("new", "interactive", True), ("new", "complete", True)])
    hygiene = SimpleNamespace(page_session=lambda: (tab, "S"))
    monkeypatch.setattr(wait, "hygiene_of", lambda browser: hygiene)
    monkeypatch.setattr(wait, "DCL_POLL", 0.0)
    browser = SimpleNamespace(driver=SimpleNamespace())
    job = _dcl_job()
    wait.get_until_dcl(browser, job, URL)
    assert tab.looks == [] and tab.sent[-1] == "Page.stopLoading"
    assert tab.sent.count("look") == 6 and "wait_until" not in job.notes  # the last: a confirmation


def test_domcontentloaded_without_a_devtools_session_is_chromedrivers_get_and_noted(monkeypatch):
    from types import SimpleNamespace

    from browserd.joboptions import wait

    class Driver:
        got = []

        def get(self, url):
            self.got.append(url)

    monkeypatch.setattr(wait, "hygiene_of", lambda browser: SimpleNamespace(page_session=lambda: None))
    browser = SimpleNamespace(driver=Driver())
    job = _dcl_job()
    wait.install(browser, job)
    browser.driver.get(URL)
    assert Driver.got == [URL]
    assert "fell back to load" in job.notes["wait_until"]
    wait.remove(browser.driver)
    assert "get" not in browser.driver.__dict__


def test_the_main_request_rewriter_stops_at_once_when_closed():
    """MainRequest.close shuts its connection so that the serving thread's blocked receive
    ends now: it used to notice the stop only at its next receive timeout (0.2 s), which
    every POST job paid (~100 ms of the +130 ms a POST cost over a GET)."""
    import socket

    from browserd.joboptions.apply import MainRequest

    ours, theirs = socket.socketpair()

    class BlockingWs:  # a websocket whose receive blocks until the socket is shut
        sock = ours

        def settimeout(self, seconds):
            pass

        def recv(self):
            data = self.sock.recv(1024)
            if not data:
                raise ConnectionError("closed")
            return data

    class Conn:
        ws = BlockingWs()

        def close(self):
            pass

    main = MainRequest(Conn(), "s1", "tab", job=type("Job", (), {"id": "j1"})())
    main._thread.start()
    try:
        main.close()
        assert not main._thread.is_alive()
    finally:
        ours.close()
        theirs.close()


def _event(method, session="s1", **params):
    return {"method": method, "params": params, "sessionId": session}


def test_a_navigation_is_pending_from_its_request_to_its_commit_or_its_end():
    """domcontentloaded waits on past a document whose script asked for another one (a
    script redirect), until that one commits or ends without a commit (a 204, a download);
    same-document navigations, other frames, other tabs and other sessions do not count."""
    from browserd.joboptions.wait import navigation_pending as pending

    asked = _event("Page.frameRequestedNavigation", frameId="top", disposition="currentTab", url="/b")
    committed = _event("Page.frameNavigated", frame={"id": "top", "loaderId": "L2"})
    assert not pending([], "s1", "top")
    assert pending([asked], "s1", "top")
    assert not pending([asked, committed], "s1", "top")
    assert not pending([asked, _event("Page.frameStoppedLoading", frameId="top")], "s1", "top")
    assert pending([_event("Page.frameStartedNavigating", frameId="top", navigationType="differentDocument")],
                   "s1", "top")
    assert not pending([_event("Page.frameStartedNavigating", frameId="top", navigationType="sameDocument")],
                       "s1", "top")
    assert not pending([_event("Page.frameRequestedNavigation", frameId="top", disposition="newTab")], "s1", "top")
    assert not pending([_event("Page.frameRequestedNavigation", frameId="child", disposition="currentTab")],
                       "s1", "top")
    assert not pending([_event("Page.frameRequestedNavigation", "other", frameId="top")], "s1", "top")
    child_commit = _event("Page.frameNavigated", frame={"id": "top", "parentId": "x"})
    assert pending([asked, child_commit], "s1", "top")
