"""A Scrapy downloader middleware that has browserd render the requests that ask for it.

    # settings.py
    DOWNLOADER_MIDDLEWARES = {"browserd_client.scrapy_middleware.BrowserdMiddleware": 950}
    BROWSERD_STATE_DIR = "/run/browserd"   # default: $BROWSERD_STATE_DIR or browserd's default
    BROWSERD_ADDRESS = None                # "127.0.0.1:PORT" or "unix:PATH"; default: the state file
    BROWSERD_TIMEOUT = 60                  # seconds for one fetch job
    BROWSERD_CONCURRENCY = 4               # browserd fetches in flight at once (threads)

    # in a spider
    yield scrapy.Request(url, meta={"browserd": True})
    yield scrapy.Request(url, meta={"browserd": {"site": "generic", "params": {"wait_for": "#built"},
                                                  "timeout": 30}})
    yield scrapy.FormRequest(url, formdata={"user": "ann"}, meta={"browserd": {
        "screenshot": {"full_page": True}, "evaluate": "return document.title"}})
    # -> response.meta["browserd_screenshot"] (PNG bytes), response.meta["browserd_value"]

The Scrapy request is honoured as Scrapy's own downloader would send it: its ``method``
and ``body`` (a ``FormRequest`` POST arrives as a POST, with its Content-Type), its
headers (``User-Agent`` from ``USER_AGENT`` becomes the browser's user agent, ``Cookie``
from Scrapy's cookie jar becomes cookies set in the browser before the navigation, the
rest are sent as extra headers; ``Accept-Encoding`` and headers still at their
``DEFAULT_REQUEST_HEADERS`` values are left to the browser, as they would apply to every
subresource too). With Scrapy's ``CookiesMiddleware`` on, the browser's cookies at the end
of the job come back to the jar: the response carries them as ``Set-Cookie`` headers (in
place of the document's own), and a cookie the jar sent that the browser no longer holds
as an expired one, so a session the page keeps or ends is the jar's too.

``meta["browserd"]`` (a dict) may also hold job options for the outputs and the page:
``screenshot``, ``pdf``, ``evaluate``, ``capture``, ``capture_max_bytes``, ``viewport``,
``locale``, ``timezone``, ``wait_until``, ``settle_ms``, ``proxy``, ``proxy_pool``,
``cookies_out`` (see :mod:`browserd_client.options`). Their results land in
``response.meta``: ``browserd_screenshot`` and ``browserd_pdf`` (bytes), ``browserd_value``,
``browserd_responses`` (with ``browserd_responses_dropped``), ``browserd_cookies``. Options
that belong to the Scrapy request (``method``, ``data``, ``headers``, ``cookies``,
``user_agent``) and unknown keys are refused: such a request fails with
:class:`BrowserdRequestFailed` code ``bad_request`` (logged as an error), never silently.

A request whose ``meta["browserd"]`` is true is fetched by the daemon and answered with
an ``HtmlResponse``: ``url`` is the final URL (after redirects), ``body`` the rendered
source (UTF-8), ``status`` and ``headers`` the main document's own, as the browser
received them (so Scrapy's ``RetryMiddleware`` and ``HttpErrorMiddleware`` work
unchanged: a 503 is retried, a 404 reaches only callbacks that allow it), flag
``"browserd"``. A document that is not HTML (JSON, CSV, PDF, an attachment) is a plain
``Response`` (``TextResponse`` for text types) with its bytes. ``meta["browserd_result"]``
holds ``title``, ``timing``, ``browser``, ``requested_url``, ``redirects``, ``notes``.
Other requests pass through to Scrapy's own downloader.

Errors: a failed fetch raises :class:`BrowserdRequestFailed`, an ``IgnoreRequest``, so
the request's errback gets it (``failure.value.code`` is the wire code, e.g.
``load_failed``, ``timeout``, ``forbidden_url``) and it is never retried by Scrapy
(the client already retried what can be retried). ``meta["browserd_error"]`` holds
``{"code", "message"}`` too.

The blocking client runs on a thread pool of its own (``BROWSERD_CONCURRENCY`` threads,
one connection each), never on the reactor's thread. Needs a Twisted reactor (Scrapy's
default, asyncio or not). In a process forked from the one that made the middleware, the
first request starts a thread pool and clients of its own; the parent's are left alone.
"""

from __future__ import annotations

import logging
import queue
import threading
from email.utils import formatdate
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from ._fork import ProcessBound
from .client import Client
from .errors import BrowserdError
from .options import JOB_OPTION_NAMES, split_fetch_kwargs

logger = logging.getLogger(__name__)

#: Keys of ``meta["browserd"]`` besides job options.
META_KEYS = ("site", "params", "timeout")
#: Job options that come from the Scrapy request itself, never from ``meta["browserd"]``.
FROM_REQUEST = {"method": "Request(method=...)", "data": "Request(body=...)", "content_type": "the Content-Type header",
                "headers": "Request(headers=...)", "cookies": "Request(cookies=...) and the cookie jar",
                "user_agent": "the USER_AGENT setting or a User-Agent header"}
#: Request headers the browser sets itself, or that become job options.
_NOT_SENT = {"accept-encoding", "content-length", "host", "connection", "cookie", "user-agent", "content-type"}


class BrowserdRequestFailed(IgnoreRequest):
    """browserd could not fetch the request's page; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str, url: str):
        super().__init__(f"browserd {code}: {message}")
        self.code, self.message, self.url = code, message, url


class BrowserdMiddleware(ProcessBound):
    """The downloader middleware (see the module's doc): renders the requests whose
    ``meta["browserd"]`` is true, on ``concurrency`` threads with a :class:`Client` each,
    against the daemon of ``state_dir`` or ``address``; ``timeout`` is the default job
    timeout in seconds. ``default_headers`` (Scrapy's ``DEFAULT_REQUEST_HEADERS``) are
    left to the browser where a request still has them untouched; with
    ``cookies_enabled`` the browser's cookies go back to Scrapy's cookie jar. Made by
    Scrapy through :meth:`from_crawler`."""

    def __init__(self, state_dir=None, address=None, timeout: float = 60.0, concurrency: int = 4,
                 default_headers: dict | None = None, cookies_enabled: bool = True):
        self.state_dir, self.address, self.timeout = state_dir, address, float(timeout)
        self.concurrency = int(concurrency)
        self.default_headers = dict(default_headers or {})   # DEFAULT_REQUEST_HEADERS: left to the browser
        self.cookies_enabled = cookies_enabled                # Scrapy's CookiesMiddleware keeps a jar
        self._start_fresh()
        self._bind_to_process()

    def _start_fresh(self) -> None:
        """This process's thread pool, clients and lock (a forked child has none of the
        parent's threads, and the parent's clients reset themselves there)."""
        self.pool = ThreadPool(minthreads=0, maxthreads=self.concurrency, name="browserd")
        self._idle: queue.SimpleQueue = queue.SimpleQueue()   # clients between fetches
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()

    _after_fork_in_child = _start_fresh

    @classmethod
    def from_crawler(cls, crawler):
        """The middleware for ``crawler``, from its ``BROWSERD_*`` settings; it closes its
        clients when the engine stops."""
        s = crawler.settings
        mw = cls(state_dir=s.get("BROWSERD_STATE_DIR"), address=s.get("BROWSERD_ADDRESS"),
                 timeout=s.getfloat("BROWSERD_TIMEOUT", 60.0), concurrency=s.getint("BROWSERD_CONCURRENCY", 4),
                 default_headers=s.getdict("DEFAULT_REQUEST_HEADERS"),
                 cookies_enabled=s.getbool("COOKIES_ENABLED", True))
        crawler.signals.connect(mw.engine_stopped, signal=signals.engine_stopped)
        return mw

    def engine_stopped(self) -> None:
        """Stop the thread pool (joining its threads) and close every client."""
        self._check_process()
        if self.pool.started:
            self.pool.stop()  # joins the threads; no fetch is running once the engine stopped
        with self._clients_lock:
            for client in self._clients:
                client.close()
            self._clients.clear()

    async def process_request(self, request, spider=None):
        """None for a request without ``meta["browserd"]`` (Scrapy downloads it); else the
        response browserd rendered, or :class:`BrowserdRequestFailed` raised."""
        from twisted.internet import reactor  # the one Scrapy installed; never at import time

        options = request.meta.get("browserd")
        if not options:
            return None
        self._check_process()
        jar = self.cookies_enabled and not request.meta.get("dont_merge_cookies")
        try:
            site, timeout, params, sent_cookies = request_job(
                request, options, timeout=self.timeout, default_headers=self.default_headers, jar=jar)
        except (TypeError, ValueError) as exc:
            logger.error("browserd cannot honour %s: %s", request, exc)
            request.meta["browserd_error"] = {"code": "bad_request", "message": str(exc)}
            raise BrowserdRequestFailed("bad_request", str(exc), request.url) from None
        if not self.pool.started:
            self.pool.start()
        try:
            result = await maybe_deferred_to_future(
                deferToThreadPool(reactor, self.pool, self._fetch, request.url, site, timeout, params))
        except BrowserdError as exc:
            request.meta["browserd_error"] = {"code": exc.code, "message": exc.message}
            raise BrowserdRequestFailed(exc.code, exc.message, request.url) from None
        request.meta["browserd_result"] = {"title": result.title, "timing": result.timing,
                                           "browser": result.browser, "requested_url": result.requested_url,
                                           "redirects": result.redirects, "notes": result.notes}
        request.meta.update(outputs_meta(result, evaluated="evaluate" in params))
        set_cookies = jar_set_cookies(result.cookies, request.url, sent_cookies) if jar else None
        return make_response(request, result, set_cookies=set_cookies)

    def _fetch(self, url: str, site: str, timeout: float, params: dict):  # noqa: D401
        """On a pool thread, with a client (connection) no other thread is using."""
        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            client = Client(self.address, state_dir=self.state_dir, timeout=self.timeout)
            with self._clients_lock:
                self._clients.append(client)
        try:
            return client.fetch(url, site=site, timeout=timeout, **params)
        finally:
            self._idle.put(client)


#: Headers that describe the bytes as sent, not the decoded body the response carries.
_TRANSPORT_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


def make_response(request, result, set_cookies: list | None = None):
    """The Scrapy response of a browserd result: the document's real status and headers
    (multi-valued headers arrive joined by newlines, as the browser reports them);
    ``set_cookies``, when given, replaces the document's ``Set-Cookie`` headers."""
    from scrapy.http import Response, TextResponse
    from scrapy.http.headers import Headers

    headers = Headers()
    for name, value in (result.headers or {}).items():
        if name.lower() in _TRANSPORT_HEADERS or (set_cookies is not None and name.lower() == "set-cookie"):
            continue
        headers.setlist(name, str(value).split("\n"))
    if set_cookies:
        headers.setlist("Set-Cookie", set_cookies)
    status = result.status if result.status is not None else 200
    url = result.url or request.url
    if result.body is None:
        headers["Content-Type"] = "text/html; charset=utf-8"  # the rendered DOM, re-encoded
        return HtmlResponse(url=url, status=status, headers=headers, body=result.source.encode("utf-8"),
                            encoding="utf-8", request=request, flags=["browserd"])
    text = result.mime_type.startswith("text/") or result.mime_type.endswith(("json", "xml"))
    cls = TextResponse if text else Response
    return cls(url=url, status=status, headers=headers, body=result.body, request=request, flags=["browserd"])


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def request_job(request, meta, *, timeout: float, default_headers: dict | None = None,
                jar: bool = False) -> tuple[str, float, dict, set]:
    """What browserd must do for a Scrapy ``request`` whose ``meta["browserd"]`` is ``meta``:
    (site, timeout in seconds, ``Client.fetch`` keyword arguments, names of the cookies
    sent from the jar). ``jar``: Scrapy's cookie jar is in use (the cookies come back).
    Raises TypeError or ValueError, naming the key or option, for what cannot be honoured."""
    meta = meta if isinstance(meta, dict) else {}
    refused = sorted(k for k in meta if k in FROM_REQUEST)
    if refused:
        raise TypeError("meta['browserd'] cannot set " + ", ".join(
            f"{k!r} (it comes from {FROM_REQUEST[k]})" for k in refused))
    unknown = sorted(set(meta) - set(META_KEYS) - set(JOB_OPTION_NAMES))
    if unknown:
        raise TypeError(f"meta['browserd'] has unknown keys {', '.join(unknown)} "
                        f"(known: {', '.join(META_KEYS + tuple(k for k in JOB_OPTION_NAMES if k not in FROM_REQUEST))})")
    params = meta.get("params") or {}
    if not isinstance(params, dict):
        raise TypeError(f"meta['browserd']['params'] must be a dict, not {type(params).__name__}")
    kwargs = {k: v for k, v in meta.items() if k in JOB_OPTION_NAMES}
    kwargs["params"] = dict(params)
    if request.method.upper() != "GET" or request.body:   # a GET with a body is refused, not made a POST
        kwargs["method"] = request.method
    defaults = {str(k).lower(): _text(v) for k, v in (default_headers or {}).items()}
    headers, cookies, content_type = {}, [], None
    for raw_name, values in request.headers.items():
        name = _text(raw_name)
        lower, value = name.lower(), ", ".join(_text(v) for v in values)
        if lower == "user-agent":
            kwargs["user_agent"] = value
        elif lower == "cookie":
            cookies += _cookie_pairs(values)
        elif lower == "content-type":
            content_type = value
        elif lower in _NOT_SENT or defaults.get(lower) == value:
            continue
        else:
            headers[name] = value
    if request.body:
        kwargs["data"] = request.body
        if content_type:
            kwargs["content_type"] = content_type
    if headers:
        kwargs["headers"] = headers
    if cookies:
        kwargs["cookies"] = cookies
    if jar:
        kwargs["cookies_out"] = True
    split_fetch_kwargs(kwargs)   # every option checked now, at the request
    timeout = meta.get("timeout", timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise TypeError(f"meta['browserd']['timeout'] must be a positive number of seconds, not {timeout!r}")
    return meta.get("site", "generic"), float(timeout), kwargs, {c["name"] for c in cookies}


def _cookie_pairs(values) -> list:
    """Cookie dicts of ``Cookie`` header values (``a=1; b=2``): the cookies of the job URL."""
    pairs = []
    for value in values:
        for part in _text(value).split(";"):
            name, sep, val = part.strip().partition("=")
            if sep and name:
                pairs.append({"name": name, "value": val})
    return pairs


def jar_set_cookies(cookies: list | None, url: str, sent: set) -> list | None:
    """``Set-Cookie`` header values that give Scrapy's cookie jar the browser's cookies at
    the end of the job (those a response from ``url``'s host may set; other sites' are the
    browser's business), and expire the cookies the jar ``sent`` that the browser dropped.
    None when the reply has no cookies (``cookies`` None): the jar is left as it is."""
    if cookies is None:
        return None
    host = (urlsplit(url).hostname or "").lower()
    lines, kept = [], set()
    for c in cookies:
        domain = str(c.get("domain") or host).lower()
        bare = domain.lstrip(".")
        if not (host == bare or host.endswith("." + bare)):
            continue
        attrs = [] if (bare == host and not domain.startswith(".")) else [f"Domain={bare}"]
        attrs.append(f"Path={c.get('path') or '/'}")
        expires = c.get("expires")
        if isinstance(expires, (int, float)) and not isinstance(expires, bool) and expires > 0:
            attrs.append("Expires=" + formatdate(expires, usegmt=True))
        attrs += [flag for flag, key in (("Secure", "secure"), ("HttpOnly", "httpOnly")) if c.get(key)]
        if c.get("sameSite"):
            attrs.append(f"SameSite={c['sameSite']}")
        lines.append(f"{c['name']}={c.get('value', '')}; " + "; ".join(attrs))
        kept.add(c["name"])
    lines += [f"{name}=; Max-Age=0; Path=/" for name in sorted(sent - kept)]
    return lines


def outputs_meta(result, evaluated: bool = False) -> dict:
    """The ``response.meta`` entries of a result's outputs (only those it has;
    ``browserd_value`` whenever the job ``evaluated`` a script, null included)."""
    meta = {}
    for key in ("screenshot", "pdf", "responses", "cookies"):
        if getattr(result, key, None) is not None:
            meta["browserd_" + key] = getattr(result, key)
    if result.responses is not None:
        meta["browserd_responses_dropped"] = result.responses_dropped
    if evaluated or result.value is not None:
        meta["browserd_value"] = result.value
    return meta


__all__ = ["BrowserdMiddleware", "BrowserdRequestFailed", "make_response", "request_job", "jar_set_cookies",
           "outputs_meta"]
