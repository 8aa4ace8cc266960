"""The one local HTTP server the test page servers are built on: loopback only, a port the
OS picks, a thread per request, started and stopped as a context manager."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def html_page(title: str, body: str, head: str = "") -> bytes:
    """A small UTF-8 HTML document (``title``, ``head`` and ``body`` inserted as given)."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
            f"<body>{body}</body></html>").encode()


class PageHandler(BaseHTTPRequestHandler):
    """HTTP/1.1, no access log, and :meth:`_reply`; ``extra_headers`` go on every reply."""

    protocol_version = "HTTP/1.1"
    extra_headers: tuple = ()

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (*self.extra_headers, *headers):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # browsers hang up on pages they gave up on


class LoopbackHTTP:
    """``with Sub() as pages: pages.url('/path', k='v')``. A subclass sets ``handler`` (a
    ``BaseHTTPRequestHandler``) and reaches its own state from the handler through
    ``self.server.pages`` (this object); ``lock`` guards whatever the handlers record."""

    handler: type[BaseHTTPRequestHandler] = BaseHTTPRequestHandler
    name = "pages"

    def __init__(self, host: str = "127.0.0.1"):
        self.lock = threading.Lock()
        self.httpd = _QuietServer((host, 0), self.handler)
        self.httpd.pages = self
        self.httpd.lock = self.lock
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=self.name, daemon=True)

    def url(self, path: str = "/", **query) -> str:
        """``http://HOST:PORT/path?k=v`` (query values as given, not escaped)."""
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"http://{self.host}:{self.port}{path}" + (f"?{qs}" if qs else "")

    def close(self) -> None:
        """Stop serving (idempotent with respect to the handlers: they may still finish)."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.close()
