"""A page server whose pages wait at a gate, to observe and steer fetches in flight.

    /gate?m=MARK   counts itself in flight, waits for a ticket (``release()`` or a GET of
                   /release), then answers a page with <p id='marker'>MARK released</p>;
                   after ``hold`` seconds without a ticket it answers "MARK held-too-long"
    /held?n=N      answers once at least N /gate requests are in flight (or after ``hold``)
    /release       hands out one ticket

Only 127.0.0.1; every wait is bounded by ``hold``. Other paths (favicon) get a 404.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback_http import LoopbackHTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, text: str, status: int = 200) -> None:
        body = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gate</title></head>"
                f"<body><p id='marker'>{html.escape(text)}</p></body></html>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        gate: GatePages = self.server.gate
        parts = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/gate":
            released = gate._pass()
            return self._send(f"{q.get('m', 'MARKER')} {'released' if released else 'held-too-long'}")
        if parts.path == "/held":
            ok = gate.wait_held(int(q.get("n", "1")), timeout=gate.hold)
            return self._send("held" if ok else "nothing-held")
        if parts.path == "/release":
            gate.release()
            return self._send("released")
        self._send("not found", status=404)


class GatePages(LoopbackHTTP):
    """Holds each ``/gate`` request until :meth:`release` gives it a ticket (or ``hold``
    seconds pass): how tests keep a known number of jobs in flight."""

    handler, name = _Handler, "gate-pages"

    def __init__(self, hold: float = 30.0):
        self.hold = hold
        self.cond = threading.Condition()
        self.in_flight = 0          # /gate requests waiting now
        self.max_in_flight = 0      # the most ever waiting at once
        self.arrived = 0            # /gate requests seen in all
        self._tickets = 0
        self._closing = False
        super().__init__()
        self.httpd.gate = self

    def url(self, path: str = "/gate", **query) -> str:
        return super().url(path, **query)

    def _pass(self) -> bool:
        with self.cond:
            self.in_flight += 1
            self.arrived += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.cond.notify_all()
            released = self.cond.wait_for(lambda: self._tickets > 0 or self._closing, timeout=self.hold)
            released = released and self._tickets > 0
            if released:
                self._tickets -= 1
            self.in_flight -= 1
            self.cond.notify_all()
            return released

    def release(self, n: int = 1) -> None:
        with self.cond:
            self._tickets += n
            self.cond.notify_all()

    def wait_held(self, n: int, timeout: float) -> bool:
        """Wait until ``n`` requests are held at the gate and no ticket is outstanding."""
        with self.cond:
            return self.cond.wait_for(lambda: self.in_flight >= n and self._tickets == 0, timeout=timeout)

    def close(self) -> None:
        with self.cond:
            self._closing = True
            self.cond.notify_all()
        super().close()
