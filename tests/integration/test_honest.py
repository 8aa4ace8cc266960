"""Issue 13: an honest answer for every kind of page, through the real daemon and clients."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from browserd_client import AsyncClient, BadRequest, FrameTooLarge, LoadFailed, Timeout
from tests.conftest import ROOT, run_cli
from tests.support.honest_pages import CP1251_TEXT, CSV, PDF, HonestPages


@pytest.fixture(scope="module")
def honest():
    with HonestPages() as pages:
        yield pages


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


#: Two site classes with their own ``dialogs`` policy; the config file overrules one of them.
DIALOG_SITES = """
from browserd.sites.generic import Generic


class Agreeable(Generic):
    name = "agreeable"
    dialogs = {"confirm": "accept", "prompt": "accept"}


class Overruled(Generic):
    name = "overruled"
    dialogs = {"confirm": "accept", "prompt": "accept"}
"""


@pytest.fixture(scope="module")
def daemon(honest, home, tmp_path_factory):
    """A daemon of 2 browsers whose user's HOME is an empty directory (no download may land
    there), with the site classes of :data:`DIALOG_SITES`."""
    from tests.conftest import running_daemon

    conf = tmp_path_factory.mktemp("conf")
    (conf / "sites").mkdir()
    (conf / "sites" / "dialog_sites.py").write_text(DIALOG_SITES)
    (conf / "browserd.toml").write_text('site_dirs = ["sites"]\n\n'
                                        '[sites.overruled]\ndialogs = { confirm = "dismiss" }\n')
    with running_daemon(str(tmp_path_factory.mktemp("state")), 2, "--config", str(conf / "browserd.toml"),
                        env={"HOME": str(home)}) as d:
        yield d


def files_under(path) -> list:
    return [os.path.join(root, f) for root, _, files in os.walk(path) for f in files]


def test_result_carries_status_headers_mime_type_and_redirects(daemon, honest):
    with daemon.client() as c:
        r = c.fetch(honest.url("/hop", n=2, first=1))
    print(r.status, r.mime_type, r.redirects)
    assert r.status == 200 and r.mime_type == "text/html"
    assert r.headers["x-honest"] == "yes" and all(k == k.lower() for k in r.headers)
    assert [h["status"] for h in r.redirects] == [301, 302]
    assert r.redirects[0]["url"] == honest.url("/hop", n=2, first=1)
    assert r.url == honest.url("/hop", n=0, first=0) and "HONEST-HOPPED" in r.source


@pytest.mark.parametrize("code", [404, 500])
def test_http_error_page_with_a_body_is_a_result_with_its_status(daemon, honest, code):
    with daemon.client() as c:
        r = c.fetch(honest.url("/status", code=code))
    assert r.status == code and f"HONEST-{code}" in r.source


def test_http_error_without_a_body_is_a_result_with_its_status_and_no_chrome_page(daemon, honest):
    with daemon.client() as c:
        r = c.fetch(honest.url("/status", code=404, body=0))
    assert r.status == 404 and r.source == "" and r.body == b""


@pytest.mark.parametrize("path,net_error", [("/loop", "ERR_TOO_MANY_REDIRECTS"),
                                            ("/empty", "ERR_EMPTY_RESPONSE"),
                                            ("/garbage", "ERR_INVALID_HTTP_RESPONSE")])
def test_failed_navigation_names_the_net_error_of_the_document(daemon, honest, path, net_error):
    with daemon.client() as c:
        with pytest.raises(LoadFailed) as info:
            c.fetch(honest.url(path))
    print(info.value)
    assert info.value.net_error == net_error and net_error in str(info.value)


def test_unsafe_port_is_named(daemon):
    with daemon.client() as c:
        with pytest.raises(LoadFailed) as info:
            c.fetch("http://127.0.0.1:9/")
    assert info.value.net_error == "ERR_UNSAFE_PORT"


@pytest.mark.parametrize("path,mime,expected", [("/csv", "text/csv", CSV), ("/pdf", "application/pdf", PDF),
                                                ("/json", "application/json", b'{"honest": true, "n": [1, 2, 3]}')])
def test_non_html_documents_come_back_as_their_bytes(daemon, honest, home, path, mime, expected):
    with daemon.client() as c:
        r = c.fetch(honest.url(path))
        assert r.body == expected and r.mime_type == mime and r.status == 200
        assert c.fetch(honest.url("/static-ok")).body is None  # the next job is a page again
    assert files_under(home) == []
    downloads = [f for f in files_under(daemon.state_dir) if f"{os.sep}downloads{os.sep}" in f]
    assert downloads == []


def test_a_document_past_devtools_default_body_buffer_comes_back_as_its_bytes(daemon, honest):
    """20 MiB of image/png (its bytes are not a PNG: Chromium shows a broken image at once):
    past DevTools' default per-resource body buffer (10 MB), under the reply limit. It is a
    body of its bytes. (A JSON or text document proves the same, but the renderer lays its
    text out for ~1.2 s a MiB.)"""
    with daemon.client() as c:
        r = c.fetch(honest.url("/big", mib=20, type="image/png"), timeout=60)
        print(f"\n20 MiB image: body {None if r.body is None else len(r.body)} bytes")
        assert r.mime_type == "image/png" and r.status == 200
        assert r.body is not None and len(r.body) == 20 << 20 and set(r.body[:4096]) == {ord("x")}
        assert c.fetch(honest.url("/static-ok")).body is None  # the next job is a page again


def test_dialogs_never_fail_a_job_and_are_reported(daemon, honest):
    with daemon.client() as c:
        alerted = c.fetch(honest.url("/alert"))
        confirmed = c.fetch(honest.url("/confirm"), wait_js="document.getElementById('marker').dataset.p !== undefined")
    assert "HONEST-ALERT" in alerted.source
    assert alerted.notes["dialogs"] == [{"type": "alert", "message": "hello from the page"}]
    assert [d["type"] for d in confirmed.notes["dialogs"]] == ["confirm", "prompt"]
    assert 'data-c="false"' in confirmed.source and 'data-p="null"' in confirmed.source  # dismissed


def test_a_sites_dialogs_policy_and_its_config_override_decide(daemon, honest):
    ready = "document.getElementById('marker').dataset.p !== undefined"
    with daemon.client() as c:
        agreed = c.fetch(honest.url("/confirm"), site="agreeable", wait_js=ready)
        overruled = c.fetch(honest.url("/confirm"), site="overruled", wait_js=ready)
    assert 'data-c="true"' in agreed.source and 'data-p=""' in agreed.source  # accepted
    assert [d["type"] for d in agreed.notes["dialogs"]] == ["confirm", "prompt"]
    assert 'data-c="false"' in overruled.source  # the config file's word beats the class's


def test_a_body_past_the_reply_limit_is_too_large_and_leaves_nothing(daemon, honest, home):
    """An attachment larger than the reply limit (64 MiB) is ``too_large``; its download is
    deleted and the browser serves the next job."""
    with daemon.client() as c:
        with pytest.raises(FrameTooLarge) as info:
            c.fetch(honest.url("/big", mib=70, attach=1), timeout=60)
        assert "past the reply limit" in str(info.value)
        assert "HONEST-OK" in c.fetch(honest.url("/static-ok")).source
    assert files_under(home) == []
    assert [f for f in files_under(daemon.state_dir) if f"{os.sep}downloads{os.sep}" in f] == []


def test_a_renderer_that_never_yields_costs_no_browser_and_the_pool_is_whole_again(daemon, honest):
    """Issue 13, item 7: ``while(true){}`` in both browsers' tabs at once. Each job answers
    ``timeout`` at its deadline; the spinning renderers are stopped without waiting on them,
    and every browser is idle again with the same Chromium (no browser replaced); the next
    jobs on them are ok. How long that takes after the answer is printed, not asserted (a
    loaded machine stretches it; 0.3-0.5 s measured on a quiet one, against the issue's 2 s;
    the old code replaced both browsers, 6.7 s)."""
    def browsers():
        return {b["id"]: b["chromium_pid"] for b in daemon.status()["browsers"]["browsers"]}

    whole_by = time.monotonic() + 60  # a browser an earlier test cost may still be starting
    while (s := daemon.status()["browsers"])["idle"] < s["size"]:
        assert time.monotonic() < whole_by, f"the pool is not whole before the test: {s}"
        time.sleep(0.05)
    before = browsers()
    answers = []

    def spin():
        with daemon.client() as c:
            try:
                c.fetch(honest.url("/spin"), timeout=4)
            except Exception as exc:  # noqa: BLE001 - recorded, asserted below
                answers.append((exc, time.monotonic()))

    threads = [threading.Thread(target=spin) for _ in before]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [type(exc) for exc, _ in answers] == [Timeout] * len(before), answers
    answered = max(at for _, at in answers)
    while True:  # bounded: the assertion below ends it
        status = daemon.status()["browsers"]
        idle_after = time.monotonic() - answered
        if status["idle"] == status["size"] and not status["active_jobs"]:
            break
        assert idle_after < 30, f"the pool never got whole again: {status}"
        time.sleep(0.02)
    print(f"\nwhile(true): all {len(before)} browsers idle {idle_after:.2f}s after the answer")
    assert browsers() == before  # the same browsers, the same Chromium processes
    with daemon.client() as c:
        for _ in before:
            assert c.fetch(honest.url("/static-ok")).status == 200


def test_a_page_past_the_reply_limit_is_answered_too_large_by_the_daemon(daemon, honest):
    """A 70 MiB text document read as a page: the daemon answers ``too_large`` itself instead
    of sending a frame every client refuses; the connection keeps serving."""
    with daemon.client() as c:
        with pytest.raises(FrameTooLarge, match="past the reply limit"):
            c.fetch(honest.url("/big", mib=70, type="text/plain"), timeout=60)
        assert c.fetch(honest.url("/static-ok")).status == 200


def wait_whole(daemon, limit: float = 60.0) -> dict:
    """The status once every browser is idle (a reset or a replacement may be running);
    bounded by ``limit`` seconds."""
    until = time.monotonic() + limit
    while (s := daemon.status())["browsers"]["idle"] < s["browsers"]["size"]:
        assert time.monotonic() < until, f"the pool is not whole: {s['browsers']}"
    return s


def test_a_job_ending_on_chromes_own_error_page_costs_no_browser(daemon, honest):
    """A 404 without a body and an empty response leave the tab on Chromium's error page;
    the reset goes on in a fresh tab of the same browser instead of replacing it."""
    before = wait_whole(daemon)
    with daemon.client() as c:
        for _ in range(2):  # both browsers of the pool
            assert c.fetch(honest.url("/status", code=404, body=0)).status == 404
            with pytest.raises(LoadFailed):
                c.fetch(honest.url("/empty"))
    after = wait_whole(daemon)
    pids = [{b["id"]: b["chromium_pid"] for b in s["browsers"]["browsers"]} for s in (before, after)]
    assert pids[1] == pids[0]
    assert after["reset"]["unproven"] == before["reset"]["unproven"]


def test_navigation_in_onload_settles_on_the_new_document(daemon, honest):
    with daemon.client() as c:
        r = c.fetch(honest.url("/onload-redirect"), wait_for="#marker")
    assert "HONEST-OK" in r.source and r.url == honest.url("/static-ok") and r.status == 200


def test_endless_location_replace_is_load_failed_naming_the_loop(daemon, honest):
    with daemon.client() as c:
        with pytest.raises(LoadFailed) as info:
            c.fetch(honest.url("/replace-loop"), wait_for="#never", timeout=15)
    assert info.value.net_error == "navigation_loop"


def test_lone_surrogate_does_not_make_a_page_unfetchable(daemon, honest):
    with daemon.client() as c:
        r = c.fetch(honest.url("/surrogate"))
    assert "HONEST-SURROGATE\ufffd" in r.source and r.title == "lone \ufffd"


def test_invalid_selector_is_bad_request(daemon, honest):
    with daemon.client() as c:
        with pytest.raises(BadRequest):
            c.fetch(honest.url("/static-ok"), wait_for="p[[")


def test_wait_timeout_names_what_it_waited_for(daemon, honest):
    from browserd_client import Timeout

    with daemon.client() as c:
        with pytest.raises(Timeout, match="#never-there"):
            c.fetch(honest.url("/static-ok"), wait_for="#never-there", wait_timeout=0.5)


def test_async_client_gets_the_same_metadata(daemon, honest):
    async def go():
        async with AsyncClient(state_dir=daemon.state_dir) as c:
            return await c.fetch(honest.url("/status", code=404)), await c.fetch(honest.url("/json"))
    page, doc = asyncio.run(go())
    assert page.status == 404 and page.headers["x-honest"] == "yes"
    assert doc.body.startswith(b'{"honest"') and doc.mime_type == "application/json"


def test_cli_fetch_exit_code_json_and_utf8_files(daemon, honest, tmp_path):
    missing = run_cli("fetch", honest.url("/status", code=404), state_dir=daemon.state_dir)
    assert missing.returncode == 5, missing.stderr
    allowed = run_cli("fetch", "--allow-status", "--json", honest.url("/status", code=404),
                      state_dir=daemon.state_dir)
    assert allowed.returncode == 0, allowed.stderr
    record = json.loads(allowed.stdout)
    assert record["status"] == 404 and record["headers"]["x-honest"] == "yes" and record["redirects"] == []
    out = tmp_path / "cp.html"
    saved = run_cli("fetch", honest.url("/cp1251"), "-o", str(out), state_dir=daemon.state_dir)
    assert saved.returncode == 0, saved.stderr
    text = out.read_bytes().decode("utf-8")
    assert CP1251_TEXT in text and 'charset="utf-8"' in text and "windows-1251" not in text


def test_cli_batch_saves_bytes_and_records_status_and_charset(daemon, honest, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join([honest.url("/cp1251"), honest.url("/csv"), honest.url("/status", code=500)]))
    out = tmp_path / "out"
    result = run_cli("fetch", "-i", str(urls), "-o", str(out), state_dir=daemon.state_dir)
    assert result.returncode == 0, result.stderr
    records = {r["url"]: r for r in map(json.loads, (out / "index.jsonl").read_text().splitlines())}
    cp = records[honest.url("/cp1251")]
    assert cp["charset"] == "windows-1251" and cp["status"] == 200
    assert CP1251_TEXT in (out / cp["file"]).read_text(encoding="utf-8")
    csv = records[honest.url("/csv")]
    assert csv["file"].endswith(".csv") and (out / csv["file"]).read_bytes() == CSV
    assert records[honest.url("/status", code=500)]["status"] == 500


def test_scrapy_retries_a_503_and_hands_a_404_to_the_callback(daemon, honest, tmp_path):
    pytest.importorskip("scrapy")
    out = tmp_path / "items.jsonl"
    crawl = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "support", "scrapy_status_crawl.py"), daemon.state_dir,
         str(out), honest.url("/flaky", key="scrapy", fail=1), honest.url("/status", code=404)],
        capture_output=True, text=True, timeout=240, env=dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "clients", "python")])))
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    items = {i["kind"]: i for i in map(json.loads, out.read_text().splitlines())}
    print(items, honest.hits("scrapy"))
    assert items["flaky"]["status"] == 200 and "HONEST-RECOVERED 2" in items["flaky"]["text"]
    assert honest.hits("scrapy") == 2  # Scrapy's own RetryMiddleware retried the 503 once
    assert items["missing"]["status"] == 404 and items["missing"]["header"] == "yes"
