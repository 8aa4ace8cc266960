"""A local page server (127.0.0.1, port picked by the OS) for the demo, tests and benchmarks.

Routes (all deterministic, all generated):
  /static?m=MARK        a ~20 KB static page carrying MARK
  /js?m=MARK&delay=MS   the marker is built by JavaScript after MS milliseconds (#built)
  /large?kb=N           a page with a DOM of about N KB
  /images?n=N&delay=S   N images served by /img/<i>.png (each after S seconds)
  /slow?s=S             sends headers, then holds the body for S seconds (bounded)
  /cookie/set?v=V       sets cookie c=V;  /cookie/get shows the cookies it received
  /storage/set?v=V&next=URL
                        sets localStorage and IndexedDB k=V (#idb-set when stored), then
                        goes on to URL by script, if given;
                        /storage/get shows both (#v, then #idb)
  /popup?to=URL         opens a second window (on URL, default /static?m=popup)
  /storm?end=MS         a popup that opens another every 100 ms, until MS (epoch ms;
                        3 s after the first page when not given)
  /name/set?v=V         sets window.name = V and pushes 3 history entries (#named)
  /name/get             shows [window.name, history.length] (#state)
  /sw/register          registers the service worker /sw.js (#sw-ready once active)
  /sw/check             shows how many service workers are registered (#regs)
  /cache/page           loads /cache/res.js, cacheable for an hour (#cached once run);
                        server.cache_hits counts the requests that reached the server
  /infinite?total=N&batch=B&delay=MS
                        an infinite list: B <li class='item'> rows, B more (after MS ms) each
                        time it is scrolled near the bottom, N in all
  /more?total=N&batch=B&delay=MS
                        a list with a button#more that loads B more rows (after MS ms) per
                        click and disappears once all N are shown
  /redirect?to=PATH     302 to PATH
  /goto?to=URL          goes on to URL by script (location.replace)
  /xhr?n=N&m=MARK       sends N XHRs (GET /api/item?i=I, JSON) at once; #xhr-done once all N
                        answered (its text: MARK)
  /api/item?i=I         a small JSON object {"i": I, "items": [...]}

A POST to any route gets what a GET of it gets (its body is read and dropped).
"""

from __future__ import annotations

import html
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000" "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201b0c2d8"
    "a50000000049454e44ae426082"
)
FILLER = "<p>" + "lorem ipsum dolor sit amet " * 8 + "</p>\n"


#: IndexedDB helpers of the /storage pages: idb(fn) opens database "db" (store "o") and calls
#: fn(db); done(id, text) appends <p id=ID>TEXT</p>, the element a job waits for.
_IDB_JS = ("<script>function done(id, text) { const p = document.createElement('p'); p.id = id;"
           " p.textContent = text || id; document.body.appendChild(p); }"
           " function idb(fn) { const r = indexedDB.open('db', 1);"
           " r.onupgradeneeded = () => r.result.createObjectStore('o'); r.onsuccess = () => fn(r.result); }</script>")


def _page(title: str, body: str, head: str = "") -> bytes:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{head}"
            f"</head><body>{body}</body></html>").encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "browserd-pages"

    def log_message(self, fmt, *args):  # quiet
        self.server.hits += 1

    def _send(self, body: bytes, status=200, ctype="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        """One route of :data:`_ROUTES` (``/img/`` by prefix), else 404."""
        parts = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        mark = html.escape(q.get("m", "MARKER"))
        path = parts.path
        route = _ROUTES.get(path) or next((name for prefix, name in _PREFIX_ROUTES if path.startswith(prefix)), None)
        if route is None:
            return self._send(_page("not found", "<p>not found</p>"), status=404)
        return getattr(self, route)(q, mark, path)

    def do_POST(self):
        """As :meth:`do_GET` once the request body (``Content-Length`` bytes) is read."""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        return self.do_GET()

    def _get_static(self, q: dict, mark: str, path: str) -> None:
        body = f"<h1 id='marker'>{mark}</h1>" + FILLER * 90
        return self._send(_page(f"static {mark}", body))

    def _get_js(self, q: dict, mark: str, path: str) -> None:
        delay = int(q.get("delay", "200"))
        script = (f"<script>setTimeout(function(){{var p=document.createElement('p');p.id='built';"
                  f"p.textContent={mark!r};document.getElementById('root').appendChild(p);"
                  f"document.title='built';}},{delay});</script>")
        return self._send(_page("building", "<div id='root'></div>" + script))

    def _get_large(self, q: dict, mark: str, path: str) -> None:
        kb = int(q.get("kb", "1024"))
        rows = "".join(f"<tr><td>{i}</td><td>{'x' * 40}</td></tr>" for i in range(kb * 1024 // 60))
        return self._send(_page("large", f"<table id='big'>{rows}</table><p id='end'>{mark}</p>"))

    def _get_images(self, q: dict, mark: str, path: str) -> None:
        n = int(q.get("n", "50"))
        delay = f"?delay={float(q['delay'])}" if "delay" in q else ""
        imgs = "".join(f"<img src='/img/{i}.png{delay}' width=8 height=8>" for i in range(n))
        return self._send(_page("images", imgs + f"<p id='marker'>{mark}</p>"))

    def _get_img(self, q: dict, mark: str, path: str) -> None:
        delay = float(q.get("delay", self.server.image_delay))
        if delay:
            time.sleep(delay)
        return self._send(_PNG, ctype="image/png")

    def _get_slow(self, q: dict, mark: str, path: str) -> None:
        seconds = min(float(q.get("s", "30")), 120.0)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"<html><body>slow")
        self.wfile.flush()
        self.server.release.wait(seconds)
        return

    def _get_cookie_set(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("cookie set", "<p>set</p>"), headers=[("Set-Cookie", f"c={q.get('v', '1')}; Path=/")])

    def _get_cookie_get(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("cookie get", f"<p id='cookies'>{html.escape(self.headers.get('Cookie', ''))}</p>"))

    def _get_storage_set(self, q: dict, mark: str, path: str) -> None:
        v = q.get("v", "1")
        return self._send(_page("storage set", f"<script>localStorage.setItem('k', {v!r});</script><p>ok</p>"
                                + _IDB_JS + f"<script>idb(db => {{ const t = db.transaction('o', 'readwrite');"
                                f" t.objectStore('o').put({v!r}, 'k'); t.oncomplete = () => {{ done('idb-set');"
                                f" if ({q.get('next', '')!r}) location.replace({q.get('next', '')!r}); }}; }});"
                                "</script>"))

    def _get_goto(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("goto", f"<script>location.replace({q.get('to', '/static')!r});</script>"))

    def _get_storage_get(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("storage get", "<p id='v'></p><script>document.getElementById('v')"
                                ".textContent='storage=' + localStorage.getItem('k');</script>" + _IDB_JS
                                + "<script>idb(db => { const r = db.transaction('o').objectStore('o').get('k');"
                                " r.onsuccess = () => done('idb', 'idb=' + (r.result ?? null)); });</script>"))

    def _get_more(self, q: dict, mark: str, path: str) -> None:
        total, batch, delay = int(q.get("total", "60")), int(q.get("batch", "10")), int(q.get("delay", "50"))
        return self._send(_page(path[1:], _list_page(path == "/more", total, batch, delay)))

    def _get_popup(self, q: dict, mark: str, path: str) -> None:
        to = q.get("to", "/static?m=popup")
        return self._send(_page("popup", f"<script>window.open({to!r});</script><p>opened</p>"))

    def _get_storm(self, q: dict, mark: str, path: str) -> None:
        end = q.get("end", "")
        return self._send(_page("storm", "<p id='storm'>storm</p><script>"
                                f"const end = {end or 'Date.now() + 3000'};"
                                " setInterval(() => { if (Date.now() < end) window.open('/storm?end=' + end); }, 100);"
                                " window.open('/storm?end=' + end);</script>"))

    def _get_name_set(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("name set", f"<script>window.name = {q.get('v', 'x')!r};"
                                " for (let i = 0; i < 3; i++) history.pushState({}, '', '?n=' + i);</script>"
                                "<p id='named'>named</p>"))

    def _get_name_get(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("name get", "<p id='state'></p><script>document.getElementById('state')"
                                ".textContent = JSON.stringify([window.name, history.length]);</script>"))

    def _get_sw_js(self, q: dict, mark: str, path: str) -> None:
        return self._send(b"self.addEventListener('fetch', () => {});", ctype="text/javascript")

    def _get_sw_register(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("sw", _IDB_JS + "<script>navigator.serviceWorker.register('/sw.js')"
                                ".then(() => navigator.serviceWorker.ready).then(() => done('sw-ready'));</script>"))

    def _get_sw_check(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("sw check", _IDB_JS + "<script>navigator.serviceWorker.getRegistrations()"
                                ".then(r => done('regs', 'regs=' + r.length));</script>"))

    def _get_cache_page(self, q: dict, mark: str, path: str) -> None:
        return self._send(_page("cache", _IDB_JS + "<script src='/cache/res.js'></script>"))

    def _get_cache_res_js(self, q: dict, mark: str, path: str) -> None:
        self.server.cache_hits += 1
        body = b"done('cached');"
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "public, max-age=3600")
        self.end_headers()
        self.wfile.write(body)
        return

    def _get_xhr(self, q: dict, mark: str, path: str) -> None:
        n = int(q.get("n", "20"))
        script = (f"<script>let left = {n}; function one() {{ if (--left === 0) {{ const p = "
                  "document.createElement('p'); p.id = 'xhr-done'; p.textContent = " + repr(mark) + ";"
                  " document.body.appendChild(p); } }"
                  f" for (let i = 0; i < {n}; i++) {{ const x = new XMLHttpRequest();"
                  " x.open('GET', '/api/item?i=' + i); x.onloadend = one; x.send(); }</script>")
        return self._send(_page("xhr", "<p>xhr</p>" + script))

    def _get_api_item(self, q: dict, mark: str, path: str) -> None:
        i = int(q.get("i", "0"))
        body = json.dumps({"i": i, "items": [{"id": i * 10 + k, "name": f"item {k}"} for k in range(10)]})
        return self._send(body.encode(), ctype="application/json")

    def _get_redirect(self, q: dict, mark: str, path: str) -> None:
        self.send_response(302)
        self.send_header("Location", q.get("to", "/static"))
        self.send_header("Content-Length", "0")
        self.end_headers()
        return


_ROUTES = {
    "/": "_get_static",
    "/static": "_get_static",
    "/js": "_get_js",
    "/large": "_get_large",
    "/images": "_get_images",
    "/slow": "_get_slow",
    "/cookie/set": "_get_cookie_set",
    "/cookie/get": "_get_cookie_get",
    "/storage/set": "_get_storage_set",
    "/goto": "_get_goto",
    "/storage/get": "_get_storage_get",
    "/infinite": "_get_more",
    "/more": "_get_more",
    "/popup": "_get_popup",
    "/storm": "_get_storm",
    "/name/set": "_get_name_set",
    "/name/get": "_get_name_get",
    "/sw.js": "_get_sw_js",
    "/sw/register": "_get_sw_register",
    "/sw/check": "_get_sw_check",
    "/cache/page": "_get_cache_page",
    "/cache/res.js": "_get_cache_res_js",
    "/redirect": "_get_redirect",
    "/xhr": "_get_xhr",
    "/api/item": "_get_api_item",
}
_PREFIX_ROUTES = (("/img/", "_get_img"), )


_LIST_SCRIPT = """
var total = %d, batch = %d, delay = %d, shown = 0, loading = false;
function add() {
  var list = document.getElementById('list');
  for (var i = 0; i < batch && shown < total; i++, shown++) {
    var li = document.createElement('li'); li.className = 'item';
    li.style.height = '120px'; li.textContent = 'item ' + shown; list.appendChild(li);
  }
  document.getElementById('count').textContent = shown;
  loading = false;
  if (shown >= total && %s) document.getElementById('more').remove();
}
function more() { if (loading || shown >= total) return; loading = true; setTimeout(add, delay); }
add();
"""


def _list_page(button: bool, total: int, batch: int, delay: int) -> str:
    script = _LIST_SCRIPT % (total, batch, delay, "true" if button else "false")
    if button:
        script += "document.getElementById('more').onclick = more;"
    else:
        script += ("window.addEventListener('scroll', function () {"
                   " if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 200) more(); });")
    control = "<button id='more'>load more</button>" if button else ""
    return f"<p>shown: <span id='count'>0</span></p><ul id='list'></ul>{control}<script>{script}</script>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A browser hanging up early (favicon, interrupted load) is normal here."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class PageServer:
    """``with PageServer() as pages: pages.url('/js', m='X')``"""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, image_delay: float = 0.0):
        self.httpd = _Server((host, port), _Handler)
        self.httpd.hits = 0
        self.httpd.cache_hits = 0
        self.httpd.release = threading.Event()
        self.httpd.image_delay = image_delay
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="pages", daemon=True)

    def url(self, path: str = "/static", **query) -> str:
        """The URL of ``path`` on this server, ``query`` as its query string (not escaped)."""
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"http://{self.host}:{self.port}{path}" + (f"?{qs}" if qs else "")

    def start(self) -> "PageServer":
        """Serve on a daemon thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held responses (/slow), stop serving and close the socket."""
        self.httpd.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
