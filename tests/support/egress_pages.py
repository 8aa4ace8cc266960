"""Pages that try to reach another address, and a server that records who reached it.

``RecordingServer(host)``: answers every GET with a small page and records the path of
every request it receives (``.requests``); the egress tests bind it on 127.0.0.2, the
address the policy refuses, and assert it received nothing.

``AttackPages()`` on 127.0.0.1 (allowed), routes taking ``to=URL``:
  /302        HTTP redirect            /meta     meta refresh
  /js         location.replace         /img      <img src>
  /iframe     <iframe src>             /fetch    fetch() then marks #done
  /popup      window.open              /worker   a Worker whose script is URL
Each page appends <p id="done"> once its attempt has been made (or at once for
navigations), so a job can wait for it.
"""

from __future__ import annotations

import html
import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback_http import LoopbackHTTP

_DONE = "<script>function done(){const p=document.createElement('p');p.id='done';document.body.appendChild(p);}</script>"


def _bodies(to: str) -> dict[str, tuple[int, dict, str]]:
    attr, js = html.escape(to, quote=True), json.dumps(to)
    return {
        "/302": (302, {"Location": to}, ""),
        "/meta": (200, {}, f"<meta http-equiv='refresh' content='0;url={attr}'><p>meta</p>"),
        "/js": (200, {}, f"<script>location.replace({js})</script><p>js</p>"),
        "/img": (200, {}, f"{_DONE}<img src='{attr}' onload='done()' onerror='done()'>"),
        "/iframe": (200, {}, f"{_DONE}<iframe src='{attr}' onload='done()'></iframe>"),
        "/fetch": (200, {}, f"{_DONE}<script>fetch({js}).then(done, done)</script>"),
        "/popup": (200, {}, f"{_DONE}<script>window.open({js}); setTimeout(done, 300)</script>"),
        "/worker": (200, {}, f"{_DONE}<script>try {{ const w = new Worker({js}); w.onerror = done; "
                             f"setTimeout(done, 300) }} catch (e) {{ done() }}</script>"),
    }


class _AttackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        to = parse_qs(parts.query).get("to", [""])[-1]
        status, headers, body = _bodies(to).get(parts.path, (404, {}, "not found"))
        data = f"<!DOCTYPE html><html><head><title>attack</title></head><body>{body}</body></html>".encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        with self.server.lock:
            self.server.requests.append(self.path)
        data = b"<!DOCTYPE html><html><head><title>secret</title></head><body>SECRET</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


class _Server(LoopbackHTTP):
    def __init__(self, host: str = "127.0.0.1"):
        super().__init__(host)
        self.httpd.requests = []

    @property
    def requests(self) -> list[str]:
        with self.lock:
            return list(self.httpd.requests)


class RecordingServer(_Server):
    handler = _RecordingHandler


class AttackPages(_Server):
    handler = _AttackHandler
