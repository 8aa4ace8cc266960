"""The daemon end to end: real CLI, real Chromium, real sockets."""

from __future__ import annotations

import json
import os
import socket
import time
from multiprocessing.connection import Client as StdlibClient
from urllib.parse import quote

import psutil
import pytest

from browserd_client import (
    AuthenticationFailed, BadRequest, Client, ForbiddenUrl, LoadFailed, UnknownOp, UnknownSite,
)
from browserd_client import protocol
from tests.support.procs import browser_records
from browserd_client.state import read_authkey, read_state
from tests.support.ports import established, listening
from tests.conftest import run_cli, run_workers


def test_fetch_returns_javascript_built_source(shared_daemon, pages):
    with shared_daemon.client() as c:
        result = c.fetch(pages.url("/js", m="JS-BUILT-42", delay=300), wait_for="#built")
    assert "JS-BUILT-42" in result.source
    assert result.title == "built"
    assert result.url == pages.url("/js", m="JS-BUILT-42", delay=300)
    assert set(result.timing) == {"queue_wait", "fetch", "total"}
    print(f"\nfetch of a JS page: {result.timing}")


def test_page_source_returns_the_static_page(shared_daemon, pages):
    with shared_daemon.client() as c:
        assert "STATIC-7" in c.page_source(pages.url("/static", m="STATIC-7"))


def test_redirect_reports_final_url(shared_daemon, pages):
    with shared_daemon.client() as c:
        result = c.fetch(pages.url("/redirect", to="/static%3Fm%3DAFTER"))
    assert result.url.endswith("/static?m=AFTER") and "AFTER" in result.source


def test_state_file_publishes_os_chosen_address_and_private_authkey(shared_daemon):
    state = read_state(shared_daemon.state_dir)
    assert state["address"]["family"] == "AF_INET" and state["address"]["port"] > 0
    assert state["pid"] == shared_daemon.pid and state["protocol"] == protocol.PROTOCOL_VERSION
    mode = os.stat(os.path.join(shared_daemon.state_dir, "authkey")).st_mode & 0o777
    assert mode == 0o600


def test_status_counts_browsers_and_jobs(shared_daemon, pages):
    with shared_daemon.client() as c:
        c.fetch(pages.url("/static", m="S"))
        status = c.status()
    assert status["pid"] == shared_daemon.pid
    # A browser whose reset could not be proven clean is being replaced: wait for it, bounded.
    deadline = time.monotonic() + 60
    while status["browsers"]["total"] != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        status = shared_daemon.status()
    assert status["browsers"]["total"] == 2 and status["browsers"]["size"] == 2
    assert status["jobs"]["served"] >= 1
    assert status["latency"]["p50"] > 0
    cli = run_cli("status", state_dir=shared_daemon.state_dir)
    assert cli.returncode == 0 and f"pid {shared_daemon.pid}" in cli.stdout
    as_json = json.loads(run_cli("status", "--json", state_dir=shared_daemon.state_dir).stdout)
    assert as_json["browsers"]["total"] == 2


def test_browsers_were_started_before_daemonizing_and_are_not_its_children(shared_daemon):
    daemon = psutil.Process(shared_daemon.pid)
    children = {c.pid for c in daemon.children()}
    for record in browser_records(shared_daemon.state_dir):
        assert record["driver_pid"] not in children
        assert psutil.Process(record["driver_pid"]).ppid() != shared_daemon.pid
        assert os.getpgid(record["driver_pid"]) == record["driver_pid"]  # own process group


def test_selenium_connections_after_daemonizing_reach_only_our_chromedrivers(shared_daemon, pages):
    """DaemonContext closes every fd not preserved; the keep-alive sockets Selenium had
    open were dropped before the fork, so each page comes back from the right browser and
    every TCP connection of the daemon is a client's, the egress proxy's to the page
    server, or one into a browser's own network namespace to a port listening there."""
    with shared_daemon.client() as c:
        for i in range(12):
            marker = f"FD-CHECK-{i}"
            assert marker in c.page_source(pages.url("/static", m=marker))
    listen_port = shared_daemon.address["port"]
    host_side = established(shared_daemon.pid)
    for local, remote in host_side:
        assert local == listen_port or remote == pages.port, (local, remote)
    into_browsers = 0
    for proc in shared_daemon.processes():
        try:
            if "_netns_launcher" not in " ".join(proc.cmdline()):
                continue
            tree = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:  # a browser helper that just exited
            continue
        inside = {e["port"] for e in listening([p.pid for p in tree])}
        egress = {e["port"] for e in listening([shared_daemon.pid], table_pid=proc.pid)}
        for local, remote in established(shared_daemon.pid, table_pid=proc.pid):
            assert remote in inside or local in egress, (local, remote, inside, egress)
            into_browsers += remote in inside
    assert into_browsers, "expected keep-alive connections to chromedriver"


def test_stdlib_multiprocessing_client_can_talk_to_the_daemon(shared_daemon):
    state = read_state(shared_daemon.state_dir)
    address = (state["address"]["host"], state["address"]["port"])
    with StdlibClient(address, authkey=read_authkey(shared_daemon.state_dir)) as conn:
        conn.send_bytes(protocol.encode_request(1, "ping"))
        reply = protocol.decode_reply(conn.recv_bytes())
    assert reply["ok"] and reply["result"]["pong"] is True


# --- bad input: a clear error each time, and the daemon keeps serving ------------------------

def _raw_conn(daemon, authkey=None):
    sock = protocol.connect(daemon.address, 5)
    conn = protocol.FrameSocket(sock)
    with conn.deadline_in(5):
        protocol.client_handshake(conn, authkey or read_authkey(daemon.state_dir))
    return conn


def _roundtrip(conn, payload: bytes) -> dict:
    with conn.deadline_in(10):
        conn.send_bytes(payload)
        return protocol.decode_reply(conn.recv_bytes())


def test_wrong_authkey_is_rejected_and_others_are_served(shared_daemon):
    with pytest.raises(AuthenticationFailed):
        Client(shared_daemon.address, b"wrong-key").ping()
    assert shared_daemon.client().ping()["pong"]
    assert "wrong authkey" in shared_daemon.log


def test_silent_connection_does_not_block_other_clients(shared_daemon):
    silent = protocol.connect(shared_daemon.address, 5)
    try:
        conn = protocol.FrameSocket(silent)
        with conn.deadline_in(5):
            assert conn.recv_bytes(256).startswith(b"#CHALLENGE#")  # it is in its own thread
        assert shared_daemon.client().ping()["pong"]
        # Still open and waiting for our answer: the ping was served alongside it.
        silent.setblocking(False)
        with pytest.raises(BlockingIOError):
            silent.recv(1)
    finally:
        silent.close()


def test_malformed_json_gets_bad_request_and_connection_stays_usable(shared_daemon):
    conn = _raw_conn(shared_daemon)
    try:
        reply = _roundtrip(conn, b"{not json")
        assert not reply["ok"] and reply["error"]["code"] == "bad_request"
        reply = _roundtrip(conn, b"[1, 2]")
        assert reply["error"]["code"] == "bad_request"
        reply = _roundtrip(conn, json.dumps({"v": 99, "id": 3, "op": "ping"}).encode())
        assert reply["error"]["code"] == "unsupported_version" and reply["id"] == 3
        assert _roundtrip(conn, protocol.encode_request(4, "ping"))["ok"]
    finally:
        conn.close()


def test_oversized_frame_is_rejected(shared_daemon):
    conn = _raw_conn(shared_daemon)
    try:
        with conn.deadline_in(10):
            conn.sock.sendall((2 << 20).to_bytes(4, "big"))  # header of a 2 MiB frame
            reply = protocol.decode_reply(conn.recv_bytes())
        assert reply["error"]["code"] == "too_large"
    finally:
        conn.close()
    assert shared_daemon.client().ping()["pong"]


@pytest.mark.parametrize("args, error", [
    ({"op": "nope"}, UnknownOp),
    ({"site": "no-such-site"}, UnknownSite),
    ({"url": None}, BadRequest),
    ({"url": "file:///etc/passwd"}, ForbiddenUrl),
    ({"url": "chrome://settings"}, ForbiddenUrl),
    ({"url": "javascript:alert(1)"}, ForbiddenUrl),
    ({"url": "data:text/html,<p>x</p>"}, ForbiddenUrl),
    ({"url": "http://"}, BadRequest),
    ({"url": "not a url"}, BadRequest),
    ({"params": {"bogus": 1}}, BadRequest),
    ({"timeout": -1}, BadRequest),
])
def test_bad_requests_get_named_errors(shared_daemon, pages, args, error):
    with shared_daemon.client() as c:
        if "op" in args:
            with pytest.raises(error):
                c._call(args["op"], {})
            return
        request = {"url": pages.url("/static"), "site": "generic", "params": {}}
        request.update(args)
        with pytest.raises(error) as info:
            c._call("fetch", request)
        assert info.value.message
        assert c.ping()["pong"]


def test_page_that_fails_to_load_gets_load_failed(shared_daemon):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    with shared_daemon.client() as c:
        with pytest.raises(LoadFailed, match="ERR_CONNECTION_REFUSED"):
            c.fetch(f"http://127.0.0.1:{port}/")
        assert c.ping()["pong"]


def test_page_chrome_refuses_to_load_is_load_failed_not_its_error_page(shared_daemon):
    with shared_daemon.client() as c:
        with pytest.raises(LoadFailed, match=r"net::ERR_[A-Z_]+"):  # UNSAFE_PORT, or here INTERNET_DISCONNECTED
            c.fetch("http://127.0.0.1:9/")  # a port Chromium will not load
        assert c.ping()["pong"]


def test_browser_comes_back_clean_between_jobs(shared_daemon, pages):
    """Cookies, local storage, IndexedDB and extra windows of one job are gone for the next."""
    total = shared_daemon.status()["browsers"]["total"]
    with shared_daemon.client() as c:
        dirty: dict[str, set] = {"cookie": set(), "storage": set(), "popup": set()}
        for _ in range(10 * total):  # until every browser of the pool took each dirty job
            if all(len(ids) == total for ids in dirty.values()):
                break
            dirty["cookie"].add(c.fetch(pages.url("/cookie/set", v="SECRET")).browser)
            dirty["storage"].add(c.fetch(pages.url("/storage/set", v="SECRET"), wait_for="#idb-set").browser)
            dirty["popup"].add(c.fetch(pages.url("/popup")).browser)
        assert all(len(ids) == total for ids in dirty.values()), dirty
        checked: set[str] = set()
        for _ in range(10 * total):
            if len(checked) == total:
                break
            cookies = c.fetch(pages.url("/cookie/get"))
            assert "SECRET" not in cookies.source
            got = c.fetch(pages.url("/storage/get"), wait_for="#idb")
            assert "storage=null" in got.source and "idb=null" in got.source, got.source
            checked |= {cookies.browser, got.browser}
        assert len(checked) == total, checked
    # A browser whose reset could not prove it clean is replaced: the pool is whole again soon.
    deadline = time.monotonic() + 60
    while shared_daemon.status()["browsers"]["total"] != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shared_daemon.status()["browsers"]["total"] == 2


def test_storage_of_an_origin_a_job_only_passed_through_is_cleared(shared_daemon, pages):
    """A job whose page goes by script through another origin (which stores data there)
    and ends back on the first: neither the job's URL nor its final URL names that origin;
    the reset still clears it, on every browser of the pool."""
    other = f"http://localhost:{pages.port}"  # another origin, same server
    back = pages.url("/static", m="back")
    via = f"{other}/storage/set?v=SECRET&next={quote(back, safe='')}"
    total = shared_daemon.status()["browsers"]["total"]
    with shared_daemon.client() as c:
        dirty: set[str] = set()
        for _ in range(10 * total):
            if len(dirty) == total:
                break
            page = c.fetch(pages.url("/goto", to=quote(via, safe="")), wait_for="#marker")
            assert page.url == back and ">back<" in page.source, page.url
            dirty.add(page.browser)
        assert len(dirty) == total, dirty
        checked: set[str] = set()
        for _ in range(10 * total):
            if len(checked) == total:
                break
            got = c.fetch(f"{other}/storage/get", wait_for="#idb")
            assert "storage=null" in got.source and "idb=null" in got.source, got.source
            checked.add(got.browser)
        assert len(checked) == total, checked


def test_32_client_processes_on_a_pool_of_2_all_succeed(shared_daemon, pages):
    records = run_workers(shared_daemon, pages, processes=32, each=2)
    failures = [r for r in records if not r["ok"]]
    waits = sorted(r["wait"] for r in records if r.get("wait") is not None)
    print(f"\n32 processes x 2 fetches: {len(records)} done, {len(failures)} failed, "
          f"max queue wait {waits[-1]:.3f}s")
    assert len(records) == 64
    assert not failures, failures[:5]
