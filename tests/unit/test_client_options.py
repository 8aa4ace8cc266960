"""Job options in the Python client: keyword arguments -> the wire ``options`` object, site
params kept apart, outputs decoded into bytes (pure logic; the daemon is replaced by a
function that records the request and answers it)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from browserd_client import Client, ScriptError, errors, protocol
from browserd_client.aio import AsyncClient
from browserd_client.options import decode_outputs, job_options, map_item, split_fetch_kwargs


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- job_options: kwargs -> wire ------------------------------------------------------------

def test_a_form_becomes_a_urlencoded_post_body():
    wire = job_options(data={"user": "ann", "tags": ["a", "b"], "pw": "p&ss w"})
    assert wire == {"method": "POST", "content_type": "application/x-www-form-urlencoded",
                    "body": b64(b"user=ann&tags=a&tags=b&pw=p%26ss+w")}


def test_raw_bytes_and_text_bodies_keep_their_bytes_and_take_the_content_type_header():
    wire = job_options(method="put", data='{"k": "ü"}', headers={"Content-Type": "application/json", "X-A": "1"})
    assert wire == {"method": "PUT", "body": b64('{"k": "ü"}'.encode()), "content_type": "application/json",
                    "headers": {"X-A": "1"}}
    assert job_options(data=b"\x00\xff") == {"method": "POST", "body": b64(b"\x00\xff")}


def test_every_output_and_page_option_is_carried_by_its_wire_name():
    wire = job_options(cookies={"sid": "42"}, user_agent="UA/1", viewport=(1280, 800), locale="de-DE",
                       timezone="Asia/Tokyo", wait_until="settled", settle_ms=0,
                       screenshot={"type": "jpeg", "quality": 70, "full_page": True},
                       pdf={"format": "A4", "landscape": True}, evaluate="return 1", capture="*/api/*",
                       capture_max_bytes=1024, cookies_out=True, proxy="socks5://127.0.0.1:1", proxy_pool=None)
    assert wire == {"cookies": [{"name": "sid", "value": "42"}], "user_agent": "UA/1",
                    "viewport": {"width": 1280, "height": 800}, "locale": "de-DE", "timezone": "Asia/Tokyo",
                    "wait_until": "settled", "settle_ms": 0,
                    "screenshot": {"type": "jpeg", "quality": 70, "full_page": True},
                    "pdf": {"format": "A4", "landscape": True}, "evaluate": "return 1", "capture": ["*/api/*"],
                    "capture_max_bytes": 1024, "cookies_out": True, "proxy": "socks5://127.0.0.1:1"}


def test_a_script_may_span_lines_where_a_header_like_value_may_not():
    script = "const a = await Promise.resolve(41);\r\nreturn a + 1"
    assert job_options(evaluate=script) == {"evaluate": script}
    with pytest.raises(ValueError, match="option 'user_agent': must not contain CR, LF or NUL"):
        job_options(user_agent="UA\n1")


def test_none_and_false_leave_an_option_to_the_daemons_default():
    assert job_options(screenshot=False, pdf=None, cookies_out=False, method=None) == {}
    assert job_options(screenshot=True, pdf=True) == {"screenshot": True, "pdf": True}


BAD = [
    ({"nope": 1}, TypeError, "unknown job options: nope"),
    ({"method": "GE T"}, ValueError, "option 'method'"),
    ({"method": "GET", "data": "x"}, ValueError, "option 'data': a body needs a method other than GET"),
    ({"data": 12}, TypeError, "option 'data': must be bytes, str or a dict"),
    ({"content_type": "text/plain"}, ValueError, "option 'content_type'"),
    ({"headers": {"X-A": "a\r\nInjected: 1"}}, ValueError, "option 'headers'"),
    ({"headers": {"Bad Name": "1"}}, ValueError, "option 'headers'"),
    ({"headers": {"X-N": 1}}, TypeError, "option 'headers'"),
    ({"cookies": [{"name": "a"}]}, TypeError, "option 'cookies': a cookie needs a 'value'"),
    ({"cookies": [{"name": "a", "value": "1", "sameSite": "lax"}]}, ValueError, "sameSite"),
    ({"cookies": [{"name": "a", "value": "1", "http_only": True}]}, TypeError, "unknown keys http_only"),
    ({"viewport": {"width": 0, "height": 800}}, ValueError, "option 'viewport': width must be 1..10000"),
    ({"viewport": {"width": 800.5, "height": 800}}, TypeError, "option 'viewport': width must be an integer"),
    ({"viewport": {"width": 800, "height": 600, "device_scale_factor": 0}}, ValueError, "device_scale_factor"),
    ({"wait_until": "idle"}, ValueError, "option 'wait_until': must be one of load, domcontentloaded"),
    ({"settle_ms": True}, TypeError, "option 'settle_ms'"),
    ({"settle_ms": -1}, ValueError, "option 'settle_ms'"),
    ({"screenshot": {"type": "png", "quality": 50}}, ValueError, "quality is for type 'jpeg' only"),
    ({"screenshot": {"type": "jpeg", "quality": 101}}, ValueError, "quality must be 0..100"),
    ({"screenshot": "gif"}, ValueError, "option 'screenshot'"),
    ({"pdf": {"format": "B5"}}, ValueError, "option 'pdf'"),
    ({"pdf": {"landscape": "yes"}}, TypeError, "option 'pdf': landscape must be true or false"),
    ({"evaluate": ""}, ValueError, "option 'evaluate': must not be empty"),
    ({"capture": []}, TypeError, "option 'capture'"),
    ({"capture_max_bytes": 1.5}, TypeError, "option 'capture_max_bytes'"),
    ({"cookies_out": "yes"}, TypeError, "option 'cookies_out'"),
]


@pytest.mark.parametrize("kwargs,kind,message", BAD, ids=[str(k) for k, _, _ in BAD])
def test_a_bad_option_is_an_error_naming_it(kwargs, kind, message):
    with pytest.raises(kind, match=message.replace("(", r"\(").replace(".", r"\.")):
        job_options(**kwargs)


# -- the split from site params ---------------------------------------------------------------

def test_site_params_and_job_options_are_split():
    params, options = split_fetch_kwargs({"params": {"wait_for": "#a"}, "scrolls": 3, "locale": "fr-FR",
                                          "options": {"proxy_pool": "eu"}})
    assert params == {"wait_for": "#a", "scrolls": 3}
    assert options == {"locale": "fr-FR", "proxy_pool": "eu"}


@pytest.mark.parametrize("kwargs,message", [
    ({"params": {"wait_for": "#a"}, "wait_for": "#b"}, "site params given twice"),
    ({"options": {"locale": "x"}, "locale": "y"}, "job options given twice"),
    ({"params": ["wait_for"]}, "params must be a dict"),
])
def test_a_name_given_twice_or_a_params_that_is_no_dict_is_a_type_error(kwargs, message):
    with pytest.raises(TypeError, match=message):
        split_fetch_kwargs(kwargs)


def test_a_map_item_replaces_site_params_and_job_options_key_by_key():
    call = {"params": {"wait_for": "#a"}, "scrolls": 2, "locale": "fr-FR", "screenshot": True}
    assert map_item("http://x/", "generic", call) == ("http://x/", "generic", call)
    url, site, kwargs = map_item({"url": "http://y/", "site": "scroll", "params": {"n": 1},
                                  "options": {"method": "POST", "data": {"a": "1"}, "screenshot": None}},
                                 "generic", call)
    assert (url, site) == ("http://y/", "scroll")
    assert split_fetch_kwargs(kwargs) == ({"n": 1}, {"method": "POST", "locale": "fr-FR",
                                                     "content_type": "application/x-www-form-urlencoded",
                                                     "body": b64(b"a=1")})
    _, _, kwargs = map_item({"url": "http://z/"}, "generic", call)
    assert split_fetch_kwargs(kwargs)[0] == {"wait_for": "#a", "scrolls": 2}
    with pytest.raises(TypeError, match="unknown keys"):
        map_item({"url": "http://y/", "headers": {}}, "generic", {})


# -- outputs ------------------------------------------------------------------------------------

def test_outputs_are_decoded_into_bytes_and_values():
    out = decode_outputs({"screenshot": {"type": "png", "base64": b64(b"\x89PNG")}, "pdf": {"base64": b64(b"%PDF")},
                          "value": {"a": [1, None]}, "cookies": [{"name": "s", "value": "1"}],
                          "responses": [{"url": "u1", "body": "{}", "body_base64": False},
                                        {"url": "u2", "body": b64(b"\x00"), "body_base64": True}],
                          "responses_dropped": 3})
    assert out["screenshot"] == b"\x89PNG" and out["screenshot_type"] == "png" and out["pdf"] == b"%PDF"
    assert out["value"] == {"a": [1, None]} and out["cookies"] == [{"name": "s", "value": "1"}]
    assert [r["body"] for r in out["responses"]] == ["{}", b"\x00"] and out["responses_dropped"] == 3
    assert decode_outputs({}) == {"screenshot": None, "screenshot_type": None, "pdf": None, "value": None,
                                  "responses": None, "responses_dropped": 0, "cookies": None}


def test_script_error_is_the_class_of_its_wire_code():
    exc = errors.error_from_wire({"code": "script_error", "message": "ReferenceError: nope is not defined"})
    assert isinstance(exc, ScriptError) and exc.message == "ReferenceError: nope is not defined"


# -- the clients send and decode them ---------------------------------------------------------

REPLY = {"source": "<html></html>", "url": "http://127.0.0.1/", "screenshot": {"type": "png", "base64": b64(b"PNG")},
         "value": 42}


@pytest.fixture
def recorded(monkeypatch):
    sent = []

    def call(self, op, args, reply_timeout=None):
        sent.append(args)
        return REPLY

    async def acall(self, op, args, reply_timeout=None):
        return call(self, op, args, reply_timeout)

    monkeypatch.setattr(Client, "_call", call)
    monkeypatch.setattr(AsyncClient, "_call", acall)
    return sent


def test_client_fetch_sends_job_options_and_site_params_apart_and_decodes_outputs(recorded):
    client = Client("127.0.0.1:9", b"key")
    r = client.fetch("http://127.0.0.1/", params={"wait_for": "#a"}, screenshot=True, evaluate="return 42",
                     headers={"X-A": "1"})
    assert recorded[0]["params"] == {"wait_for": "#a"}
    assert recorded[0]["options"] == {"screenshot": True, "evaluate": "return 42", "headers": {"X-A": "1"}}
    assert (r.screenshot, r.value, r.pdf) == (b"PNG", 42, None)
    assert client.page_source("http://127.0.0.1/", wait_for="#b", locale="de-DE") == "<html></html>"
    assert recorded[1]["params"] == {"wait_for": "#b"} and recorded[1]["options"] == {"locale": "de-DE"}
    client.fetch("http://127.0.0.1/")
    assert "options" not in recorded[2]   # a job that asks for nothing new sends what it sent before


def test_client_map_checks_options_at_the_call_and_sends_them_with_every_url(recorded):
    client = Client("127.0.0.1:9", b"key")
    with pytest.raises(ValueError, match="option 'wait_until'"):
        client.map(["http://127.0.0.1/"], wait_until="soon")
    results = list(client.map(["http://127.0.0.1/a", {"url": "http://127.0.0.1/b", "options": {"locale": "ja"}}],
                              concurrency=2, locale="de-DE", screenshot=True))
    assert all(r.ok and r.result.screenshot == b"PNG" for r in results)
    assert sorted(a["options"]["locale"] for a in recorded) == ["de-DE", "ja"]
    bad = list(client.map([{"url": "http://127.0.0.1/c", "options": {"viewport": (0, 1)}}]))
    assert [(r.ok, r.code) for r in bad] == [(False, "bad_request")] and "viewport" in bad[0].message


def test_async_client_fetch_and_map_send_job_options(recorded):
    async def scenario():
        client = AsyncClient("127.0.0.1:9", b"key")
        r = await client.fetch("http://127.0.0.1/", pdf={"format": "A4"}, params={"wait_for": "#a"})
        results = [m async for m in client.map(["http://127.0.0.1/a"], concurrency=1, cookies_out=True)]
        with pytest.raises(TypeError, match="unknown keys"):
            client.map(["http://127.0.0.1/"], viewport={"w": 1})
        return r, results

    r, results = asyncio.run(scenario())
    assert r.value == 42 and recorded[0]["options"] == {"pdf": {"format": "A4"}}
    assert recorded[0]["params"] == {"wait_for": "#a"}
    assert results[0].ok and recorded[1]["options"] == {"cookies_out": True}


def test_the_request_frame_carries_the_options_as_json():
    args = {"url": "http://x/", "site": "generic", "params": {}, "options": job_options(data={"a": "b"})}
    assert protocol.decode_request(protocol.encode_request(1, "fetch", args)).args["options"]["body"] == b64(b"a=b")
