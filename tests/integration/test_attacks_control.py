"""Attacks on the browsers' control surface (chromedriver's WebDriver port, Chromium's
DevTools port), made the way an attacker would: another local user scanning loopback, a
page on a loopback origin sending blind POSTs, a job fetching another browser's
endpoints. Each asks for a "browser" that is any program (a marker script): the attack
succeeds if the script runs or any endpoint answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from browserd_client.errors import BrowserdError
from tests.conftest import ROOT
from tests.support.ports import listening

ATTACKER = os.path.join(ROOT, "tests", "support", "attacker.py")
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def marker():
    """An executable that, if ever run, leaves a file behind: the proof of the attack."""
    d = tempfile.mkdtemp(prefix="browserd-attack-")
    os.chmod(d, 0o755)
    script = os.path.join(d, "evil.sh")
    proof = os.path.join(d, "pwned")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\ntouch {proof}\nsleep 2\n")
    os.chmod(script, 0o755)
    yield script, proof
    shutil.rmtree(d, ignore_errors=True)


def control_ports(daemon) -> list[dict]:
    """Every TCP port the daemon's browsers listen on (in any network namespace), found
    as root; the daemon's own authenticated listener is left out."""
    pids = [p.pid for p in daemon.processes()]
    ports = [entry for entry in listening(pids) if entry["port"] != daemon.address.get("port")]
    print("browser processes listen on:", sorted((e["port"], e["pid"]) for e in ports))
    # chromedriver's and DevTools' ports of 2 browsers: if none were found, the test
    # would prove nothing.
    assert len({e["port"] for e in ports}) >= 4, ports
    return ports


def test_local_user_cannot_drive_or_start_a_browser(start_daemon, marker):
    if not os.path.exists(SYSTEM_PYTHON) or not shutil.which("setpriv"):
        pytest.skip("needs /usr/bin/python3 and setpriv to act as another user")
    daemon = start_daemon(2)
    script, proof = marker
    ports = sorted({e["port"] for e in control_ports(daemon)})
    result = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
         SYSTEM_PYTHON, ATTACKER, script, *map(str, ports)],
        capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr
    answered = json.loads(result.stdout)
    print("endpoints that answered user nobody:", answered)
    assert answered == {}, f"another local user reached browser control endpoints: {answered}"
    assert not os.path.exists(proof), "another local user made chromedriver run a program"


class _EvilPage(BaseHTTPRequestHandler):
    """A page on a loopback origin that fires blind requests at every given port."""

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        q = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        ports = [int(p) for p in q.get("ports", "").split(",") if p]
        caps = json.dumps({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": q.get("bin", ""), "args": []}}}})
        script = f"""
        const ports = {json.dumps(ports)}, body = {json.dumps(caps)};
        const tries = [];
        for (const port of ports) {{
          for (const host of ["127.0.0.1", "localhost"]) {{
            const base = "http://" + host + ":" + port;
            tries.push(fetch(base + "/session", {{method: "POST", mode: "no-cors", body}}).catch(() => null));
            tries.push(fetch(base + "/json/new?about:blank", {{method: "PUT", mode: "no-cors"}}).catch(() => null));
          }}
        }}
        Promise.all(tries).then(() => {{
          const p = document.createElement("p"); p.id = "done"; p.textContent = "sent " + tries.length;
          document.body.appendChild(p);
        }});
        """
        body = f"<!DOCTYPE html><html><head><title>evil</title></head><body><script>{script}</script></body></html>"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def evil_site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_page_on_loopback_origin_cannot_start_a_program(start_daemon, marker, evil_site):
    daemon = start_daemon(2)
    script, proof = marker
    ports = ",".join(str(p) for p in sorted({e["port"] for e in control_ports(daemon)}))
    with daemon.client() as client:
        # Both browsers load the page, so each one's own ports are attacked from inside.
        for _ in range(2):
            page = client.fetch(f"{evil_site}/?ports={ports}&bin={script}", wait_for="#done", timeout=60)
            print(page.url, "->", page.source[-80:])
    assert not os.path.exists(proof), "a web page made chromedriver run a program"


def test_job_cannot_read_any_browsers_control_endpoints(start_daemon):
    daemon = start_daemon(2)
    ports = sorted({e["port"] for e in control_ports(daemon)})
    leaked = {}
    with daemon.client() as client:
        for port in ports:
            for path in ("/sessions", "/status", "/json/list", "/json/version"):
                url = f"http://127.0.0.1:{port}{path}"
                try:
                    source = client.fetch(url, timeout=20).source
                except BrowserdError as exc:
                    print(url, "->", exc.code)
                    continue
                if any(sign in source for sign in ("sessionId", "webSocketDebuggerUrl", '"ready"', "Browser")):
                    leaked[url] = source[:200]
    assert leaked == {}, f"a job read browser control endpoints: {leaked}"


def test_the_demo_page_every_job_may_reach_serves_one_constant_page(start_daemon):
    """The one loopback address the egress policy opens to every job (and any local user
    can reach): no route but /demo, nothing of the request echoed, no query read."""
    import http.client
    from urllib.parse import urlsplit

    from browserd import demo

    daemon = start_daemon(1)
    url = urlsplit(daemon.status()["demo_url"])
    answers = {}
    for path in ("/demo?m=%3Cscript%3Ealert(1)%3C/script%3E", "/large?kb=60000", "/slow?s=120",
                 "/cookie/set?v=1%0d%0aX-Injected:%20yes", "/redirect?to=http://127.0.0.2/"):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        answers[path] = (response.status, response.read(), response.getheader("X-Injected"))
        conn.close()
    print({p: (s, len(b)) for p, (s, b, _) in answers.items()})
    first, *others = answers.values()
    assert first == (200, demo.PAGE, None)
    assert all(status == 404 and len(body) < 100 and injected is None for status, body, injected in others)
