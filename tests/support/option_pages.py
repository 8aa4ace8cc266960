"""Pages for the job options (issue 14), served on 127.0.0.1 by a server that records
what each request carried: method, path, headers, body.

    /echo?k=K          any method: records the request, answers a page with the method
                       (with &held=H: and an <img> of /held.gif?k=H, as /held-image)
    /probe?k=K         a page that shows what it sees: innerWidth, navigator.userAgent,
                       navigator.language, the Intl locale and time zone (<pre id=probe>, JSON)
    /late-xhr          an XHR begun 100 ms after load, answered 700 ms later (#late: LATE-DONE)
    /mutating          the DOM changes every 50 ms for 800 ms, then stops (#state: SETTLED)
    /tall              a page 3000 CSS px tall
    /towering          a page 200000 CSS px tall
    /three-pages       three blocks, each on a page of its own when printed
    /xhr3              three fetch() of /api/item?n=1..3 (JSON) on load; #done when all came
    /api/item?n=N      {"item": N, "nested": {"list": [N, N*2]}}
    /set-cookie        sets cookie srv=from-server; Path=/
    /slow?ms=N         a plain page answered after N ms
    /empty-404         a 404 without a body (Chromium shows its own error page)
    /held-image?k=K    a page whose DOM is whole at once (#held: HELD-DOM) but whose load
                       waits for /held.gif?k=K, which the server holds until
                       ``release(K)`` (at most HOLD_LIMIT s); ``order`` records
                       ("image-sent", K) when it is answered

Threads per request; nothing waits unbounded.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback_http import LoopbackHTTP, PageHandler, html_page

PROBE_SCRIPT = """
const o = Intl.DateTimeFormat().resolvedOptions();
document.getElementById('probe').textContent = JSON.stringify({
  innerWidth: innerWidth, innerHeight: innerHeight, userAgent: navigator.userAgent,
  language: navigator.language, locale: o.locale, timeZone: o.timeZone,
  cookie: document.cookie});
"""


_html = html_page

#: Seconds /held.gif waits for its release at most.
HOLD_LIMIT = 25.0
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


PAGES = {
    "/probe": _html("probe", f"<pre id='probe'></pre><script>{PROBE_SCRIPT}</script>",
                    "<meta name='viewport' content='width=device-width'>"),
    "/late-xhr": _html("late", "<p id='late'>LATE-WAITING</p><script>"
                       "addEventListener('load', () => setTimeout(() => fetch('/slow?ms=700')"
                       ".then(r => r.text()).then(() => {"
                       "document.getElementById('late').textContent = 'LATE-DONE'; }), 100));</script>"),
    "/mutating": _html("mutating", "<p id='state'>CHANGING 0</p><script>"
                       "let n = 0; const t0 = performance.now();"
                       "const id = setInterval(() => { n++; const p = document.getElementById('state');"
                       "if (performance.now() - t0 >= 800) { clearInterval(id); p.textContent = 'SETTLED ' + n; }"
                       "else p.textContent = 'CHANGING ' + n; }, 50);</script>"),
    "/tall": _html("tall", "<div style='height:3000px;background:#eee'>tall</div>",
                   "<style>html,body{margin:0;padding:0}</style>"),
    "/towering": _html("towering", "<div style='height:200000px;background:#eee'>towering</div>",
                       "<style>html,body{margin:0;padding:0}</style>"),
    # readyState, as the page's own script reads it, is a 128 MB string (a hostile page)
    "/huge-readystate": _html("huge", "<p id='huge'>HUGE</p><script>const s = 'x'.repeat(1 << 27);"
                              "Object.defineProperty(Document.prototype, 'readyState', {get() { return s; }});"
                              "</script>"),
    # a script redirect before DOMContentLoaded (common on real sites), to a page of ~400 KB
    "/js-redirect": _html("js-redirect", "<script>location.replace('/js-target');</script><p>REDIRECTING</p>"),
    "/js-target": _html("js-target", "<p id='target'>JS-TARGET</p>" + "<p>filler</p>" * 20000),
    "/three-pages": _html("three", "".join(f"<div style='page-break-after:always'>PAGE {n}</div>" for n in (1, 2))
                          + "<div>PAGE 3</div>"),
    "/xhr3": _html("xhr3", "<p id='count'>0</p><script>"
                   "Promise.all([1, 2, 3].map(n => fetch('/api/item?n=' + n).then(r => r.json())))"
                   ".then(items => { const d = document.createElement('p'); d.id = 'done';"
                   "d.textContent = items.length; document.body.appendChild(d); });</script>"),
}


class _Handler(PageHandler):

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.seen.append({"method": self.command, "path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": body})
            self.server.pages.changed.notify_all()

    def _serve(self):
        self._record()
        parts = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        held = f"<img src='/held.gif?k={q['held']}'>" if "held" in q else ""
        if path == "/echo":
            return self._reply(200, _html("echo", f"<p id='method'>METHOD-{self.command}</p>{held}"))
        if path in PAGES:
            return self._reply(200, PAGES[path])
        if path == "/api/item":
            n = int(q.get("n", "0"))
            return self._reply(200, json.dumps({"item": n, "nested": {"list": [n, n * 2]}}).encode(),
                               "application/json")
        if path == "/set-cookie":
            return self._reply(200, _html("cookie", "<p>set</p>"), headers=[("Set-Cookie", "srv=from-server; Path=/")])
        if path == "/held-image":
            k = q.get("k", "")
            return self._reply(200, _html("held", f"<p id='held'>HELD-DOM</p><img src='/held.gif?k={k}'>"))
        if path == "/held.gif":
            return self._send_held(q.get("k", ""))
        if path == "/empty-404":
            return self._reply(404, b"")
        if path == "/slow":
            time.sleep(min(int(q.get("ms", "0")), 5000) / 1000)
            return self._reply(200, b"slow", "text/plain")
        return self._reply(404, _html("not found", f"<p>not found</p>{held}"))  # &held=H as /echo

    def _send_held(self, k: str):
        pages = self.server.pages
        pages.release_event(k).wait(HOLD_LIMIT)
        with pages.lock:
            pages.order.append(("image-sent", k))
        try:
            self._reply(200, GIF, "image/gif")
        except OSError:
            pass  # the browser stopped loading it

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class OptionPages(LoopbackHTTP):
    """``with OptionPages() as pages: pages.url('/echo', k='x'); pages.requests('/echo?k=x')``"""

    handler, name = _Handler, "option-pages"

    def __init__(self):
        super().__init__()
        self.httpd.seen = []
        self.changed = threading.Condition(self.lock)  # notified on each request
        self.order: list[tuple] = []  # ("image-sent", k) and what a test appends
        self._released: dict[str, threading.Event] = {}

    def release_event(self, k: str) -> threading.Event:
        """The event that lets /held.gif?k=K be answered."""
        with self.lock:
            return self._released.setdefault(k, threading.Event())

    def release(self, k: str) -> None:
        """Answer /held.gif?k=K (now, or at once when it comes)."""
        self.release_event(k).set()

    def note(self, what: str, k: str) -> None:
        """Append ``(what, k)`` to ``order`` (a test's own event, beside the server's)."""
        with self.lock:
            self.order.append((what, k))

    def wait_request(self, path: str, timeout: float) -> bool:
        """Whether a request for ``path`` (with its query) came within ``timeout`` s."""
        with self.changed:
            return self.changed.wait_for(lambda: any(r["path"] == path for r in self.httpd.seen), timeout)

    def requests(self, path: str) -> list[dict]:
        """Every request whose path (with its query) is ``path``, in order."""
        with self.lock:
            return [dict(r) for r in self.httpd.seen if r["path"] == path]
