"""A loopback site with a login session, recording every request it receives (issue 14's
edge tests: the CLI's flags and the Scrapy middleware).

    /login     GET: a login form. POST user=ann&pw=s3cret (form-urlencoded): "LOGGED-IN ann"
               and Set-Cookie sid=S-ANN (HttpOnly, Path=/); any other POST: 403 "BAD-LOGIN"
    /account   with cookie sid=S-ANN: "ACCOUNT ann", and a script sets cookie js_seen=1;
               without: "LOGIN-REQUIRED"
    /echo      any method: a page titled "echo" (what it received is recorded)

``.requests``: a list of {"method", "path", "headers" (lower-case names), "body" (bytes)},
in arrival order. Only 127.0.0.1; threads per request; nothing waits.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback_http import LoopbackHTTP, PageHandler, html_page

SESSION = "S-ANN"


_page = html_page


class _Handler(PageHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        self.server.record({"method": self.command, "path": path, "body": body,
                            "headers": {k.lower(): v for k, v in self.headers.items()}})
        cookies = SimpleCookie(self.headers.get("Cookie") or "")
        status, extra, page = 200, {}, _page("echo", "<p id='msg'>ECHO</p>")
        if path == "/login" and self.command == "POST":
            form = parse_qs(body.decode("ascii", "replace"))
            if form == {"user": ["ann"], "pw": ["s3cret"]}:
                extra["Set-Cookie"] = f"sid={SESSION}; Path=/; HttpOnly"
                page = _page("welcome", "<p id='msg'>LOGGED-IN ann</p>")
            else:
                status, page = 403, _page("bad", "<p id='msg'>BAD-LOGIN</p>")
        elif path == "/login":
            page = _page("login", "<form method='post'><input name='user'><input name='pw'></form>")
        elif path == "/account":
            if "sid" in cookies and cookies["sid"].value == SESSION:
                page = _page("account", "<p id='msg'>ACCOUNT ann</p>"
                                        "<script>document.cookie = 'js_seen=1; path=/'</script>")
            else:
                page = _page("account", "<p id='msg'>LOGIN-REQUIRED</p>")
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    do_GET = do_POST = do_PUT = _answer


class SessionPages(LoopbackHTTP):
    """``with SessionPages() as site: site.url('/login'); site.received('/login')``"""

    handler, name = _Handler, "session-pages"

    def __init__(self):
        super().__init__()
        self.requests: list[dict] = []
        self.httpd.record = self._record

    def _record(self, request: dict) -> None:
        with self.lock:
            self.requests.append(request)

    def received(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]
