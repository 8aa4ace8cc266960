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

import queue
import threading

from scrapy import signals
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from ._fork import ProcessBound
from .client import Client
from .errors import BrowserdError


class BrowserdRequestFailed(IgnoreRequest):
    """browserd could not fetch the request's page; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str, url: str):
        super().__init__(f"browserd {code}: {message}")
        self.code, self.message, self.url = code, message, url


class BrowserdMiddleware(ProcessBound):
    """The downloader middleware (see the module's doc): renders the requests whose
    ``meta["browserd"]`` is true, on ``concurrency`` threads with a :class:`Client` each,
    against the daemon of ``state_dir`` or ``address``; ``timeout`` is the default job
    timeout in seconds. Made by Scrapy through :meth:`from_crawler`."""

    def __init__(self, state_dir=None, address=None, timeout: float = 60.0, concurrency: int = 4):
        self.state_dir, self.address, self.timeout = state_dir, address, float(timeout)
        self.concurrency = int(concurrency)
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
                 timeout=s.getfloat("BROWSERD_TIMEOUT", 60.0), concurrency=s.getint("BROWSERD_CONCURRENCY", 4))
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
        options = options if isinstance(options, dict) else {}
        site = options.get("site", "generic")
        params = dict(options.get("params") or {})
        timeout = float(options.get("timeout", self.timeout))
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
        return make_response(request, result)

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


def make_response(request, result):
    """The Scrapy response of a browserd result: the document's real status and headers
    (multi-valued headers arrive joined by newlines, as the browser reports them)."""
    from scrapy.http import Response, TextResponse
    from scrapy.http.headers import Headers

    headers = Headers()
    for name, value in (result.headers or {}).items():
        if name.lower() in _TRANSPORT_HEADERS:
            continue
        headers.setlist(name, str(value).split("\n"))
    status = result.status if result.status is not None else 200
    url = result.url or request.url
    if result.body is None:
        headers["Content-Type"] = "text/html; charset=utf-8"  # the rendered DOM, re-encoded
        return HtmlResponse(url=url, status=status, headers=headers, body=result.source.encode("utf-8"),
                            encoding="utf-8", request=request, flags=["browserd"])
    text = result.mime_type.startswith("text/") or result.mime_type.endswith(("json", "xml"))
    cls = TextResponse if text else Response
    return cls(url=url, status=status, headers=headers, body=result.body, request=request, flags=["browserd"])


__all__ = ["BrowserdMiddleware", "BrowserdRequestFailed", "make_response"]
