"""Job options where users reach them (issue 14): ``browserd fetch`` flags writing real
files, ``fetch -i`` JSON lines, and a real Scrapy crawl that logs in with a FormRequest,
keeps the session through Scrapy's cookie jar and gets a screenshot in response.meta.
Real daemon, real Chromium, a loopback site that records what it received
(tests/support/session_pages.py).

NEEDS THE DAEMON SIDE of the job options (branch s5-opts-core): written alongside it, these
tests fail on a daemon that rejects the new options ("unknown job options"); run them
after both branches are merged.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli
from tests.support.session_pages import SESSION, SessionPages

CLIENT_PATH = os.path.join(ROOT, "clients", "python")


@pytest.fixture
def site():
    with SessionPages() as s:
        yield s


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return struct.unpack(">II", data[16:24])


def test_cli_fetch_sends_the_header_and_writes_the_screenshot_and_the_scripts_value(shared_daemon, site, tmp_path):
    shot, page = tmp_path / "shot.png", tmp_path / "page.html"
    done = run_cli("fetch", site.url("/echo"), "--header", "X-Edge: yes, with a comma", "--user-agent",
                   "EdgeCLI/1.0 (a, b)", "--viewport", "640x480", "--screenshot", str(shot),
                   "--eval", "return {title: document.title, width: innerWidth}", "-o", str(page),
                   state_dir=shared_daemon.state_dir)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"title": "echo", "width": 640}   # the value on stdout
    assert "ECHO" in page.read_text()
    assert png_size(shot.read_bytes()) == (640, 480)
    main = site.received("/echo")[0]
    assert main["headers"]["x-edge"] == "yes, with a comma"
    assert main["headers"]["user-agent"] == "EdgeCLI/1.0 (a, b)"


def test_cli_fetch_posts_a_form_and_saves_the_session_cookie(shared_daemon, site, tmp_path):
    jar = tmp_path / "cookies.json"
    done = run_cli("fetch", site.url("/login"), "--data", "user=ann&pw=s3cret", "--cookies-out", str(jar),
                   state_dir=shared_daemon.state_dir)
    assert done.returncode == 0, done.stderr
    assert "LOGGED-IN ann" in done.stdout
    login = site.received("/login")[0]
    assert (login["method"], login["body"]) == ("POST", b"user=ann&pw=s3cret")
    assert login["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert {c["name"]: c["value"] for c in json.loads(jar.read_text())}["sid"] == SESSION


def test_fetch_i_takes_json_lines_with_options_of_their_own(shared_daemon, site, tmp_path):
    urls = tmp_path / "in.jsonl"
    urls.write_text(site.url("/echo") + "\n" + json.dumps(
        {"url": site.url("/login"), "options": {"data": {"user": "ann", "pw": "s3cret"}, "screenshot": True}}) + "\n")
    out = tmp_path / "out"
    done = run_cli("fetch", "-i", str(urls), "-o", str(out), "--header", "X-All: 1",
                   state_dir=shared_daemon.state_dir)
    assert done.returncode == 0, done.stderr + done.stdout
    records = {r["url"]: r for r in map(json.loads, (out / "index.jsonl").read_text().splitlines())}
    login = records[site.url("/login")]
    assert login["ok"] and png_size((out / login["screenshot"]).read_bytes())
    assert "screenshot" not in records[site.url("/echo")]
    posted = site.received("/login")[0]
    assert posted["method"] == "POST" and posted["body"] == b"user=ann&pw=s3cret"
    assert posted["headers"]["x-all"] == "1" and site.received("/echo")[0]["headers"]["x-all"] == "1"


def test_scrapy_logs_in_with_a_form_request_keeps_the_session_in_its_jar_and_gets_a_screenshot(
        shared_daemon, site, tmp_path):
    pytest.importorskip("scrapy", reason="scrapy is not installed - the middleware needs it")
    out = tmp_path / "items.jsonl"
    crawl = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "support", "scrapy_session_crawl.py"), shared_daemon.state_dir,
         str(out), site.url("")],
        capture_output=True, text=True, timeout=240, env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + CLIENT_PATH))
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    items = {item["step"]: item for item in map(json.loads, out.read_text().splitlines())}
    print(json.dumps(items, indent=1))
    # 1. the FormRequest reached the server as a POST form, with Scrapy's user agent and header
    login = site.received("/login")[0]
    assert (login["method"], login["body"]) == ("POST", b"user=ann&pw=s3cret")
    assert login["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert login["headers"]["user-agent"] == "EdgeBot/1.0 (scrapy; +http://127.0.0.1/, commas kept)"
    assert login["headers"]["x-crawl"] == "edge"
    assert items["login"] == {"step": "login", "text": "LOGGED-IN ann", "via": True, "status": 200}
    # 2. the session came from Scrapy's jar into a fresh browser job; outputs in response.meta
    account = items["account"]
    assert account["text"] == "ACCOUNT ann" and account["via"]
    assert account["png_size"] == [800, 600]
    assert account["value"] == {"title": "account", "n": [1, 2]}
    assert "sid" in account["cookies"] and "js_seen" in account["cookies"]
    browser_account = site.received("/account")[0]
    assert f"sid={SESSION}" in browser_account["headers"].get("cookie", "")
    # 3. Scrapy's own downloader holds the session and the cookie the page's script set
    assert items["plain"] == {"step": "plain", "text": "ACCOUNT ann", "via": False}
    plain = site.received("/account")[-1]
    assert f"sid={SESSION}" in plain["headers"]["cookie"] and "js_seen=1" in plain["headers"]["cookie"]
    # 4. what meta["browserd"] cannot honour fails the request, and the page is never fetched
    refused = items["refused"]
    assert refused["exception"] == "BrowserdRequestFailed" and refused["code"] == "bad_request"
    assert "cannot set 'headers'" in refused["message"] and not site.received("/echo")
