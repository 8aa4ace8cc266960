"""Pages that each reproduce one kind of answer a browser must report honestly (issue 13).

    /status?code=N&body=0|1   an HTML error page with status N (body=0: no body at all)
    /loop                     a redirect to itself (ERR_TOO_MANY_REDIRECTS)
    /hop?n=N                  N redirects (302, then 301s), then a 200 page
    /empty                    closes the connection without a reply (ERR_EMPTY_RESPONSE)
    /garbage                  a reply that is not HTTP (ERR_INVALID_HTTP_RESPONSE)
    /csv                      text/csv as an attachment (a download)
    /json                     application/json, inline
    /pdf                      a small application/pdf, inline
    /png                      a 1x1 image/png
    /alert                    alert() during load
    /confirm                  confirm() and prompt() after load
    /onload-redirect          location.href changes in onload, to /static-ok
    /replace-loop             location.replace to itself on every load, forever
    /surrogate                a lone UTF-16 surrogate in the DOM text and the title
    /spin                     while(true){} once loaded
    /cp1251                   a windows-1251 page, declared only by <meta charset>
    /flaky?key=K&fail=N       503 for the first N hits of K, then 200
    /static-ok                a plain 200 page

Only 127.0.0.1, threads per request, nothing waits unbounded.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback_http import LoopbackHTTP, PageHandler, html_page

# A 1-page PDF with the text "HONEST-PDF" (hand-written; byte offsets need not be exact
# for Chromium's PDF reader, which recovers the xref table).
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]/Contents 4 0 R>>endobj\n"
       b"4 0 obj<</Length 44>>stream\nBT /F1 12 Tf 10 100 Td (HONEST-PDF) Tj ET\nendstream endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")
CSV = b"id,name\n1,alpha\n2,beta\n"
CP1251_TEXT = "Привет, мир"


_html = html_page


class _Handler(PageHandler):
    extra_headers = (("X-Honest", "yes"),)

    def _big(self, mib: int, ctype: str, attach: bool):
        """``mib`` MiB of ``x`` as ``ctype``, streamed in 1 MiB writes (never held whole)."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(mib << 20))
        self.send_header("Cache-Control", "no-store")
        if attach:
            self.send_header("Content-Disposition", "attachment; filename=big.bin")
        self.end_headers()
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(mib):
                self.wfile.write(chunk)
        except OSError:  # the browser stopped reading: that is the point of some tests
            pass

    def _redirect(self, status: int, location: str):
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def do_GET(self):  # noqa: C901 - one branch per page
        parts = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path == "/status":
            code = int(q.get("code", "404"))
            body = _html(f"status {code}", f"<p id='marker'>HONEST-{code}</p>") if q.get("body", "1") == "1" else b""
            return self._reply(code, body)
        if path == "/static-ok":
            return self._reply(200, _html("ok", "<p id='marker'>HONEST-OK</p>"))
        if path == "/loop":
            return self._redirect(302, "/loop")
        if path == "/hop":
            n = int(q.get("n", "2"))
            if n <= 0:
                return self._reply(200, _html("hopped", "<p id='marker'>HONEST-HOPPED</p>"))
            return self._redirect(301 if q.get("first") == "1" else 302, f"/hop?n={n - 1}&first=0")
        if path == "/empty":
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        if path == "/garbage":
            self.close_connection = True
            self.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")
            return None
        if path == "/big":
            return self._big(int(q["mib"]), q.get("type", "application/octet-stream"), q.get("attach") == "1")
        if path == "/csv":
            return self._reply(200, CSV, "text/csv", [("Content-Disposition", "attachment; filename=data.csv")])
        if path == "/json":
            return self._reply(200, b'{"honest": true, "n": [1, 2, 3]}', "application/json")
        if path == "/pdf":
            return self._reply(200, PDF, "application/pdf")
        if path == "/png":
            return self._reply(200, PNG, "image/png")
        if path == "/alert":
            return self._reply(200, _html("alerted", "<p id='marker'>HONEST-ALERT</p>"
                                          "<script>alert('hello from the page')</script>"))
        if path == "/confirm":
            return self._reply(200, _html("confirmed", "<p id='marker'>HONEST-CONFIRM</p><script>"
                                          "window.addEventListener('load', () => setTimeout(() => {"
                                          "document.getElementById('marker').dataset.c = confirm('sure?');"
                                          "document.getElementById('marker').dataset.p = prompt('name?');"
                                          "}, 0));</script>"))
        if path == "/onload-redirect":
            return self._reply(200, _html("before", "<p>before</p><script>window.addEventListener('load', "
                                          "() => { location.href = '/static-ok'; });</script>"))
        if path == "/replace-loop":
            return self._reply(200, _html("looping", "<script>location.replace('/replace-loop?' + Date.now())"
                                          "</script>"))
        if path == "/surrogate":
            return self._reply(200, _html("lone", "<p id='marker'>HONEST-SURROGATE</p><script>"
                                          "const s = '\U0001F600'.slice(0, 1);"
                                          "document.getElementById('marker').append(s);"
                                          "document.title = 'lone ' + s;</script>"))
        if path == "/spin":
            return self._reply(200, _html("spin", "<p>spinning</p><script>"
                                          "setTimeout(() => { while (true) {} }, 0)</script>"))
        if path == "/cp1251":
            body = ("<!DOCTYPE html><html><head><meta charset='windows-1251'><title>cp</title></head>"
                    f"<body><p id='marker'>{CP1251_TEXT}</p></body></html>").encode("cp1251")
            return self._reply(200, body, "text/html")
        if path == "/flaky":
            with self.server.lock:
                self.server.hits[q.get("key", "")] += 1
                hits = self.server.hits[q.get("key", "")]
            if hits <= int(q.get("fail", "1")):
                return self._reply(503, _html("unavailable", f"<p id='marker'>HONEST-503 {hits}</p>"))
            return self._reply(200, _html("recovered", f"<p id='marker'>HONEST-RECOVERED {hits}</p>"))
        return self._reply(404, _html("not found", "<p>not found</p>"))


class HonestPages(LoopbackHTTP):
    """``with HonestPages() as pages: pages.url('/status', code=404)``"""

    handler, name = _Handler, "honest-pages"

    def __init__(self):
        super().__init__()
        self.httpd.hits = Counter()

    def hits(self, key: str) -> int:
        with self.lock:
            return self.httpd.hits[key]
