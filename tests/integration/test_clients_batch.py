"""Many URLs at once: ``Client.map``, ``AsyncClient``, ``browserd fetch -i`` and the Scrapy
middleware, end to end against real daemons and real Chromium. Pages come from local
servers only; the gate server (tests/support/gate_pages.py) holds pages until released,
so fetches in flight are counted and steered without sleeping."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from browserd_client import AsyncClient, AuthenticationFailed, Backoff, ForbiddenUrl
from tests.conftest import BROWSERD, ROOT, run_cli
from tests.support.gate_pages import GatePages

CLIENT_PATH = os.path.join(ROOT, "clients", "python")


@pytest.fixture
def gate():
    with GatePages(hold=30) as g:
        yield g


def refused_url() -> str:
    """An http URL on a port nothing listens on: the browser gets ERR_CONNECTION_REFUSED."""
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    return f"http://127.0.0.1:{port}/"


def wait_status(daemon, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = daemon.status()
        if predicate(status):
            return status
        assert time.monotonic() < deadline, f"status never reached the expected state: {status}"
        time.sleep(0.05)


def client_gone(status) -> int:
    return status["jobs"]["by_outcome"].get("client_gone", 0)


def map_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("browserd-map")]


# --- Client.map -------------------------------------------------------------------------------

def test_map_yields_every_url_once_with_its_outcome(shared_daemon, pages):
    good = [pages.url("/static", m=f"MAP-{i}") for i in range(5)]
    bad = {"file:///etc/passwd": "forbidden_url", refused_url(): "load_failed"}
    urls = good[:2] + list(bad) + good[2:]
    with shared_daemon.client() as c:
        results = list(c.map(urls, concurrency=3))
    assert sorted(r.url for r in results) == sorted(urls)
    assert all(urls[r.index] == r.url for r in results)
    by_url = {r.url: r for r in results}
    for i, url in enumerate(good):
        r = by_url[url]
        assert r.ok and r.code is None and r.result.url == url and f"MAP-{i}" in r.result.source
    for url, code in bad.items():
        r = by_url[url]
        assert not r.ok and r.result is None and r.code == code and r.message
    assert not map_threads()


def test_map_never_has_more_than_k_fetches_in_flight(start_daemon, gate):
    """3 browsers, concurrency 2: at each step two pages are held at the gate (the third
    browser idle) before one is let through; a third fetch would show up at the gate."""
    daemon = start_daemon(3)
    urls = [gate.url(m=f"BOUND-{i}") for i in range(6)]
    results = []
    with daemon.client() as c:
        consumer = threading.Thread(target=lambda: results.extend(c.map(urls, concurrency=2)))
        consumer.start()
        try:
            for left in range(len(urls), 0, -1):
                assert gate.wait_held(min(2, left), timeout=60), f"fetches never reached the gate ({left} left)"
                gate.release()
        finally:
            consumer.join(120)
    print(f"\nmap(concurrency=2) on 3 browsers: at most {gate.max_in_flight} pages in flight")
    assert gate.max_in_flight == 2
    assert sorted(r.url for r in results) == sorted(urls)
    assert all(r.ok and "released" in r.result.source for r in results)


def test_closing_map_early_aborts_fetches_in_flight_and_ends_its_threads(shared_daemon, gate):
    urls = [gate.url(m=f"EARLY-{i}") for i in range(6)]
    before = client_gone(shared_daemon.status())
    with shared_daemon.client() as c:
        results = c.map(urls, concurrency=2)
        gate.release()
        first = next(results)
        assert gate.wait_held(2, timeout=60)  # the other two fetches are running now
        results.close()
    assert first.ok and "released" in first.result.source
    assert not map_threads()
    # The daemon saw both connections close mid-job and freed the browsers.
    wait_status(shared_daemon, lambda s: client_gone(s) == before + 2 and s["browsers"]["idle"] == 2)
    assert gate.arrived == 3  # no URL was started after the close


# --- AsyncClient ------------------------------------------------------------------------------

def test_async_client_fetches_maps_and_raises_named_errors(shared_daemon, pages):
    urls = [pages.url("/static", m=f"AMAP-{i}") for i in range(4)] + ["file:///etc/passwd", refused_url()]

    async def main():
        retry = Backoff(attempts=10, deadline=30)
        async with AsyncClient(state_dir=shared_daemon.state_dir, retry=retry) as c:
            pong, status, sites = await c.ping(), await c.status(), await c.sites()
            page = await c.fetch(pages.url("/js", m="ASYNC-JS", delay=300), wait_for="#built")
            source = await c.page_source(pages.url("/static", m="ASYNC-STATIC"))
            with pytest.raises(ForbiddenUrl):
                await c.fetch("file:///etc/passwd")
            assert (await c.ping())["pong"]  # the connection survives an error reply
            mapped = [r async for r in c.map(urls, concurrency=3)]
        with pytest.raises(AuthenticationFailed):
            await AsyncClient(shared_daemon.address, b"wrong-key").ping()
        return pong, status, sites, page, source, mapped

    pong, status, sites, page, source, mapped = asyncio.run(main())
    assert pong["pong"] and status["pid"] == shared_daemon.pid and "generic" in [s["name"] for s in sites]
    assert "ASYNC-JS" in page.source and page.title == "built"
    assert "ASYNC-STATIC" in source
    assert sorted(r.url for r in mapped) == sorted(urls)
    codes = {r.url: r.code for r in mapped}
    assert codes.pop("file:///etc/passwd") == "forbidden_url" and codes.pop(urls[-1]) == "load_failed"
    assert set(codes.values()) == {None} and all(r.result.url == r.url for r in mapped if r.ok)


def test_async_fetch_leaves_the_event_loop_free(shared_daemon, gate):
    """The page is held at the gate until another task on the same loop sees it held and
    releases it: a fetch that blocked the loop would get "held-too-long" back instead."""

    async def main():
        async with AsyncClient(state_dir=shared_daemon.state_dir) as c:
            fetch = asyncio.create_task(c.fetch(gate.url(m="ASYNC-GATE")))
            for _ in range(3000):
                if gate.in_flight:
                    break
                assert not fetch.done(), fetch
                await asyncio.sleep(0.01)
            gate.release()
            return await fetch

    result = asyncio.run(main())
    assert "ASYNC-GATE released" in result.source


def test_async_map_closed_early_cancels_fetches_in_flight(shared_daemon, gate):
    urls = [gate.url(m=f"AEARLY-{i}") for i in range(6)]
    before = client_gone(shared_daemon.status())

    async def main():
        async with AsyncClient(state_dir=shared_daemon.state_dir) as c:
            results = c.map(urls, concurrency=2)
            gate.release()
            first = await results.__anext__()
            assert await asyncio.to_thread(gate.wait_held, 2, 60)
            await results.aclose()
            return first, [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    first, leftover = asyncio.run(main())
    assert first.ok and "released" in first.result.source
    assert not leftover
    wait_status(shared_daemon, lambda s: client_gone(s) == before + 2 and s["browsers"]["idle"] == 2)
    assert gate.arrived == 3


def _python(minor: int) -> str | None:
    """A working interpreter of Python 3.<minor> on this machine, if any."""
    candidates = [shutil.which(f"python3.{minor}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/python3.{minor}")))
    for exe in filter(None, candidates):
        check = subprocess.run([exe, "-c", "import sys; print(sys.version_info[1])"], capture_output=True,
                               text=True, timeout=30)
        if check.returncode == 0 and check.stdout.strip() == str(minor):
            return exe
    return None


_LISTENER = """
import json, sys
from multiprocessing.connection import Listener
with Listener(("127.0.0.1", 0), authkey=b"cross-version-key") as listener:
    print(listener.address[1], flush=True)
    with listener.accept() as conn:
        request = json.loads(conn.recv_bytes())
        conn.send_bytes(json.dumps({"v": 1, "id": request["id"], "ok": True,
                                    "result": {"pong": True, "python": sys.version_info[1]}}).encode())
"""

_ASYNC_PING = """
import asyncio, sys
from browserd_client import AsyncClient
async def main():
    async with AsyncClient(state_dir=sys.argv[1]) as c:
        print((await c.ping())["pong"])
asyncio.run(main())
"""


@pytest.mark.parametrize("minor", [9, 12, 13])
def test_async_handshake_works_with_other_python_versions(shared_daemon, minor):
    """Python 3.12 changed the multiprocessing handshake (sha256 challenges): the asyncio
    client under another Python talks to this daemon, and ours to that Python's stdlib
    listener."""
    exe = _python(minor)
    if exe is None:
        pytest.skip(f"no Python 3.{minor} interpreter on this machine")
    theirs = subprocess.run([exe, "-c", _ASYNC_PING, shared_daemon.state_dir], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, PYTHONPATH=CLIENT_PATH))
    assert theirs.returncode == 0 and theirs.stdout.strip() == "True", theirs.stderr
    listener = subprocess.Popen([exe, "-c", _LISTENER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(listener.stdout.readline())

        async def ping():
            async with AsyncClient(f"127.0.0.1:{port}", b"cross-version-key") as c:
                return await c.ping()

        assert asyncio.run(ping()) == {"pong": True, "python": minor}
        assert listener.wait(30) == 0
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


# --- browserd fetch -i ------------------------------------------------------------------------

def _index(out) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def test_fetch_i_saves_pages_writes_an_index_and_resumes(shared_daemon, pages, tmp_path):
    good = [pages.url("/static", m=f"CLI-{i}") for i in range(4)]
    refused = refused_url()
    urls_file, out = tmp_path / "urls.txt", tmp_path / "pages"
    urls_file.write_text("# pages to fetch\n\n" + "\n".join(good[:2] + [refused] + good[2:] + [good[0]]) + "\n  \n")
    fetch = ("fetch", "-i", str(urls_file), "-o", str(out), "-j", "2")

    first = run_cli(*fetch, state_dir=shared_daemon.state_dir)
    assert first.returncode == 1, first.stderr
    index = {r["url"]: r for r in _index(out)}
    assert len(_index(out)) == 5 and set(index) == set(good) | {refused}
    for i, url in enumerate(good):
        record = index[url]
        assert record["ok"] and record["code"] is None and record["final_url"] == url
        assert f"CLI-{i}" in (out / record["file"]).read_text()
    assert not index[refused]["ok"] and index[refused]["code"] == "load_failed" and index[refused]["file"] is None
    assert sorted(os.listdir(out)) == sorted([index[u]["file"] for u in good] + ["index.jsonl"])
    # Not a terminal: plain lines, one per URL, no bar.
    assert "\r" not in first.stderr and "\x1b" not in first.stderr
    lines = first.stderr.splitlines()
    assert len(lines) == 5 and all(line.startswith("[") and "/5] " in line for line in lines)
    assert sum(f"failed load_failed {refused}" in line for line in lines) == 1
    assert "fetched 4 of 5 URLs" in first.stdout and "failed 1: load_failed 1" in first.stdout
    assert re.search(r" in \d+\.\ds \(\d+\.\d/s\)", first.stdout)  # elapsed time and rate
    assert f"index: {out / 'index.jsonl'}" in first.stdout

    second = run_cli(*fetch, state_dir=shared_daemon.state_dir)
    assert second.returncode == 1 and "4 skipped" in second.stdout
    lines = second.stderr.splitlines()
    assert len(lines) == 1 and f"failed load_failed {refused}" in lines[0]  # only the failed URL again
    assert len(_index(out)) == 6

    urls_file.write_text("\n".join(good) + "\n")
    third = run_cli(*fetch, "--json", state_dir=shared_daemon.state_dir)
    assert third.returncode == 0, third.stderr
    summary = json.loads(third.stdout)
    assert summary["skipped"] == 4 and summary["saved"] == 0 and summary["failed"] == {}


def test_fetch_i_on_a_terminal_draws_a_progress_bar_with_rate_and_eta(shared_daemon, pages, tmp_path):
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("\n".join(pages.url("/static", m=f"TTY-{i}") for i in range(3)) + "\n")
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "BROWSERD_STATE_DIR"}
    try:
        proc = subprocess.run(BROWSERD + ["fetch", "-i", str(urls_file), "-o", str(tmp_path / "out"),
                                          "--state-dir", shared_daemon.state_dir],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, text=True,
                              timeout=120, env=env)
        os.close(slave)
        slave = None
        shown = b""
        for _ in range(100):  # the pty holds what was written; EIO once it is all read
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    text = shown.decode()
    assert proc.returncode == 0
    assert "\r" in text and "3/3" in text and "/s ETA" in text and "0 failed" in text
    assert "fetched 3 of 3 URLs" in proc.stdout


def test_fetch_needs_exactly_one_of_url_or_input_and_a_directory(tmp_path):
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("http://127.0.0.1:9/\n")
    state_dir = str(tmp_path / "state")
    assert run_cli("fetch", state_dir=state_dir).returncode == 2
    both = run_cli("fetch", "http://127.0.0.1:9/", "-i", str(urls_file), "-o", str(tmp_path), state_dir=state_dir)
    assert both.returncode == 2 and "either a URL or -i FILE" in both.stderr
    no_dir = run_cli("fetch", "-i", str(urls_file), state_dir=state_dir)
    assert no_dir.returncode == 2 and "-o DIR" in no_dir.stderr
    not_running = run_cli("fetch", "-i", str(urls_file), "-o", str(tmp_path / "out"), state_dir=state_dir)
    assert not_running.returncode == 3
    assert "exit codes" in run_cli("fetch", "--help").stdout


# --- Scrapy -----------------------------------------------------------------------------------

def test_scrapy_crawl_through_the_middleware_gets_the_javascript_built_page(shared_daemon, pages, gate, tmp_path):
    pytest.importorskip("scrapy", reason="scrapy is not installed (pip install scrapy) - the middleware needs it")
    out = tmp_path / "items.jsonl"
    crawl = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "support", "scrapy_crawl.py"), shared_daemon.state_dir,
         str(out), pages.url("/js", m="SCRAPY-JS", delay=300), pages.url("/static", m="SCRAPY-STATIC"),
         refused_url(), gate.url("")],
        capture_output=True, text=True, timeout=240, env=dict(os.environ, PYTHONPATH=ROOT))
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    items = {item["kind"]: item for item in map(json.loads, out.read_text().splitlines())}
    rendered = items["rendered"]
    assert rendered["text"] == "SCRAPY-JS" and rendered["title"] == "built" and rendered["via"]
    assert rendered["url"] == pages.url("/js", m="SCRAPY-JS", delay=300)
    # Requests without meta["browserd"] go through Scrapy's own downloader: no JavaScript ran.
    assert items["plain"]["text"] is None and not items["plain"]["via"]
    assert items["static"]["text"] == "SCRAPY-STATIC" and not items["static"]["via"]
    failing = items["failing"]
    assert failing["exception"] == "BrowserdRequestFailed" and failing["error_code"] == "load_failed"
    assert failing["meta_error"]["code"] == "load_failed"
    # The reactor kept crawling while a browserd fetch waited: it released that page itself.
    assert items["gated"]["text"] == "SCRAPY-GATE released" and items["gated"]["via"]
