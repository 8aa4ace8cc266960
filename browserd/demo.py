"""The daemon's own demo page: one constant page on 127.0.0.1, for ``browserd demo``.

The egress policy refuses loopback by default, so the demo page cannot be served by the
CLI (jobs could not reach it); the daemon serves it and the policy lets jobs reach exactly
this address and port. Any local user can reach it too, so it is kept to the least that
can be served: one route (``GET /demo``, 404 otherwise), a constant body built once (no
query is read, nothing of a request is echoed), one thread handling one connection at a
time with a 2 s timeout for each, nothing logged.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import TCPServer

MARKER = "Hello-from-browserd"
PATH = "/demo"
#: The page: its content is built by JavaScript after 300 ms, so a rendered fetch shows it
#: and a plain HTTP fetch does not.
PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>building</title></head><body>"
    "<div id='root'></div><script>setTimeout(function(){var p=document.createElement('p');"
    f"p.id='built';p.textContent='{MARKER}';document.getElementById('root').appendChild(p);"
    "document.title='built';},300);</script></body></html>"
).encode()


class _Handler(BaseHTTPRequestHandler):
    timeout = 2.0  # seconds per connection (StreamRequestHandler sets it on the socket)
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # nothing a client sends reaches a log
        pass

    def do_GET(self):
        found = self.path.split("?", 1)[0] == PATH
        body = PAGE if found else b"not found"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8" if found else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class _Server(HTTPServer):
    def server_bind(self):
        """Bind without ``HTTPServer.server_bind``'s ``socket.getfqdn``: this runs in the
        daemon after its fork, where a resolver lock another thread of the parent held at
        the fork stays held; the reverse lookup then blocked the daemon's start forever
        (seen in CI: "daemon did not report ready within 60s")."""
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class DemoServer:
    """``DemoServer().start()``; ``.url``; ``.stop()``. One thread, started after the fork."""

    def __init__(self, host: str = "127.0.0.1"):
        self.httpd = _Server((host, 0), _Handler)
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="demo-page", daemon=True)

    @property
    def url(self) -> str:
        """The demo page's URL (``http://127.0.0.1:PORT/demo``)."""
        return f"http://{self.host}:{self.port}{PATH}"

    def start(self) -> "DemoServer":
        """Serve on a daemon thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
