"""The blocking Python client: stdlib only, safe to vendor into any scraper."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from . import protocol
from ._fork import ProcessBound
from .errors import BrowserdError, Timeout
from .options import decode_outputs, split_fetch_kwargs
from .retry import TRANSIENT, Backoff, RetryState
from .state import default_state_dir, read_authkey, read_state

logger = logging.getLogger(__name__)

#: Seconds a client waits for a reply beyond the job's own timeout.
_REPLY_GRACE = 10.0


class _SiteTimeout:
    def __repr__(self):
        return "SITE_TIMEOUT"


#: ``fetch(..., timeout=SITE_TIMEOUT)`` sends no timeout: the daemon gives the job the site's
#: own (its ``timeout``, else the daemon's ``job_timeout``). The client then waits for the
#: reply for its own ``timeout`` + 10 s, so make that at least as long as the site's.
SITE_TIMEOUT = _SiteTimeout()


def _fetch_request(url: str, site: str, timeout, default: float, params: dict) -> tuple[dict, float]:
    """A fetch's request args, and how long to wait for its reply. ``params`` holds the
    fetch's keyword arguments: site params and job options, split by
    :func:`~browserd_client.options.split_fetch_kwargs` (raises TypeError/ValueError)."""
    params, options = split_fetch_kwargs(params)
    args = {"url": url, "site": site, "params": params}
    if options:
        args["options"] = options
    if timeout is SITE_TIMEOUT:
        return args, default + _REPLY_GRACE
    timeout = default if timeout is None else timeout
    return dict(args, timeout=timeout), timeout + _REPLY_GRACE


@dataclass(frozen=True)
class FetchResult:
    source: str                 #: the rendered page source
    url: str                    #: the final URL, after redirects
    title: str
    site: str
    requested_url: str
    browser: str = ""           #: id of the daemon's browser that served it
    timing: dict = field(default_factory=dict)  #: seconds: queue_wait, fetch, total
    attempts: int = 1           #: 2 when the first browser crashed and the daemon retried
    notes: dict = field(default_factory=dict)  #: what the site class reported (e.g. scrolls, dialogs)
    status: int | None = None   #: HTTP status of the main document (None: not HTTP, e.g. data:)
    headers: dict = field(default_factory=dict)  #: its response headers, lower-case names
    mime_type: str = ""         #: its MIME type as the browser saw it
    redirects: list = field(default_factory=list)  #: [{"url", "status"}] of each redirect hop
    body: bytes | None = None   #: a document that is not HTML (JSON, CSV, PDF, an attachment): its bytes
    charset: str = ""           #: the document's own charset (document.characterSet)
    # Outputs, only when the job asked for them (see browserd_client.options.decode_outputs):
    screenshot: bytes | None = None  #: PNG or JPEG bytes (``screenshot=``)
    screenshot_type: str | None = None  #: "png" or "jpeg"
    pdf: bytes | None = None    #: PDF bytes (``pdf=``)
    value: object = None        #: the JSON value of ``evaluate=``
    responses: list | None = None  #: captured responses (``capture=``), dicts; binary bodies as bytes
    responses_dropped: int = 0  #: matching responses beyond the daemon's count cap
    cookies: list | None = None  #: the browser's cookies at the end of the job (``cookies_out=True``)

    @property
    def ok(self) -> bool:
        """The main document's status is below 400 (or it has none)."""
        return self.status is None or self.status < 400


def result_from_wire(r: dict, url: str, site: str) -> FetchResult:
    """The :class:`FetchResult` of a fetch reply (older daemons send no metadata)."""
    import base64

    body = r.get("body")
    return FetchResult(
        source=r.get("source", ""), url=r.get("url", ""), title=r.get("title", ""),
        site=r.get("site", site), requested_url=url, browser=r.get("browser", ""),
        timing=r.get("timing", {}), attempts=r.get("attempts", 1), notes=r.get("notes") or {},
        status=r.get("status"), headers=r.get("headers") or {}, mime_type=r.get("mime_type") or "",
        redirects=r.get("redirects") or [], body=base64.b64decode(body) if body is not None else None,
        charset=r.get("charset") or "", **decode_outputs(r),
    )


class _Settings(ProcessBound):
    """What :class:`Client` and :class:`~browserd_client.AsyncClient` are made with, and
    where they find the daemon."""

    def __init__(self, address, authkey, state_dir, timeout, connect_timeout, retry, max_reply_bytes):
        self.state_dir = state_dir or default_state_dir()
        self._address = protocol.parse_address(address) if isinstance(address, str) else address
        self._authkey = authkey.encode() if isinstance(authkey, str) else authkey
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry = retry or Backoff()
        self.max_reply_bytes = max_reply_bytes

    def _target(self, first_try: bool) -> tuple[dict, bytes]:
        """The daemon's address and authkey: as given, else read again from its state
        directory at every connect (a restarted daemon listens on a new address). A
        missing state file raises :class:`NotRunning`, which the retry policy waits out
        (``Backoff.wait_for_daemon``): a start-up or a restart."""
        address, authkey = self._address, self._authkey
        if address is None or authkey is None:
            state = read_state(self.state_dir)
            address = address or state["address"]
            authkey = authkey or read_authkey(self.state_dir)
        return address, authkey


class Client(_Settings):
    """A connection to a browserd daemon, reused across calls and re-opened as needed.

    With no ``address``/``authkey`` both are read from the daemon's state directory
    (``state_dir``, ``$BROWSERD_STATE_DIR`` or the default). Refused or reset
    connections, failed handshakes and ``busy``/``shutting_down`` replies are retried
    with exponential backoff and full jitter (``retry``); bad requests never are.
    One Client may be shared by threads; calls on it are serialized. A connection
    belongs to the process that opened it: in a forked child (``os.fork``, a ``fork``
    multiprocessing pool) the first call opens the child's own, and the parent's is left
    to the parent, untouched.
    """

    def __init__(
        self,
        address: str | dict | None = None,
        authkey: bytes | str | None = None,
        *,
        state_dir: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retry: Backoff | None = None,
        max_reply_bytes: int = protocol.MAX_REPLY_BYTES,
    ):
        super().__init__(address, authkey, state_dir, timeout, connect_timeout, retry, max_reply_bytes)
        self._conn: protocol.FrameSocket | None = None
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._bind_to_process()

    # -- public operations ------------------------------------------------------------

    def ping(self) -> dict:
        return self._call("ping", {})

    def status(self) -> dict:
        return self._call("status", {})

    def metrics(self) -> str:
        """The daemon's metrics in Prometheus text format (what its ``/metrics`` serves)."""
        return self._call("metrics", {})["text"]

    def sites(self, problems: bool = False):
        """The loaded site classes, a list of dicts; with ``problems=True``
        ``{"sites": [...], "problems": [...]}``, with the load's problems too."""
        if not problems:
            return self._call("sites", {})
        return _sites_with_problems(self._call("sites", {"problems": True}))

    def fetch(self, url: str, site: str = "generic", timeout=None, **params) -> FetchResult:
        """Load ``url`` in a warm browser through site class ``site``; return the page.
        ``timeout``: seconds (capped by the daemon at the site's), None for this client's
        ``timeout``, or :data:`SITE_TIMEOUT` to send none.

        Keyword arguments: ``params={...}``, the site class's params; job options by name
        (``method``, ``data``, ``headers``, ``cookies``, ``user_agent``, ``viewport``,
        ``locale``, ``timezone``, ``wait_until``, ``settle_ms``, ``screenshot``, ``pdf``,
        ``evaluate``, ``capture``, ``capture_max_bytes``, ``cookies_out``, ``proxy``,
        ``proxy_pool``; see :func:`browserd_client.options.job_options`); any other keyword
        is a site param as well. Outputs land in the result (``screenshot``, ``pdf`` as
        bytes, ``value``, ``responses``, ``cookies``). A bad option raises TypeError or
        ValueError here, or :class:`BadRequest` from the daemon; a throwing ``evaluate``
        raises :class:`~browserd_client.errors.ScriptError`."""
        args, reply_timeout = _fetch_request(url, site, timeout, self.timeout, params)
        return result_from_wire(self._call("fetch", args, reply_timeout=reply_timeout), url, site)

    def page_source(self, url: str, site: str = "generic", timeout: float | None = None, **params) -> str:
        return self.fetch(url, site=site, timeout=timeout, **params).source

    def map(self, urls, site: str = "generic", concurrency: int = 4, timeout: float | None = None, **params):
        """Fetch every URL of ``urls`` with at most ``concurrency`` jobs in flight; yield one
        :class:`~browserd_client.batch.MapResult` per URL, in completion order. A failed
        URL is a result with ``ok=False`` and its error ``code``, never an exception.

        Each of the ``concurrency`` worker threads has a connection of its own (this
        client's settings, not its connection). ``urls`` is read lazily. Closing the
        generator early aborts the fetches in flight and ends the threads.

        Keyword arguments as :meth:`fetch` (checked now), for every URL; an item of ``urls``
        may also be a dict ``{"url", "site"?, "params"?, "options"?}`` (options: job option
        keyword arguments) whose keys replace those of the call for that URL.
        """
        from .batch import map_urls  # batch builds on Client

        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        split_fetch_kwargs(params)  # a bad option fails the call, not each URL
        return map_urls(self, urls, site, concurrency, timeout, params)

    def close(self) -> None:
        self._check_process()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- machinery --------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        if self._conn is not None:
            self._conn.close()  # our descriptor only: the parent's connection lives on
            self._conn = None
        self._lock = threading.RLock()  # a parent thread may have held the old one

    def _connect(self, first_try: bool) -> protocol.FrameSocket:
        address, authkey = self._target(first_try)
        sock = protocol.connect(address, self.connect_timeout)
        conn = protocol.FrameSocket(sock)
        try:
            with conn.deadline_in(self.connect_timeout):
                protocol.client_handshake(conn, authkey)
        except BaseException:
            conn.close()
            raise
        return conn

    def _call(self, op: str, args: dict, reply_timeout: float | None = None):
        reply_timeout = reply_timeout or self.timeout + _REPLY_GRACE
        self._check_process()
        with self._lock:
            state = RetryState(self.retry, op=op, logger=logger)
            while state.next_try():
                try:
                    return self._call_once(op, state.retry_args(op, args), reply_timeout,
                                           first_try=state.tries == 1)
                except Exception as exc:
                    step = state.failed(exc)
                if step.error is not None:
                    raise step.error
                time.sleep(step.delay)
            raise state.give_up()

    def _call_once(self, op: str, args: dict, reply_timeout: float, first_try: bool):
        if self._conn is None:
            self._conn = self._connect(first_try)
        conn = self._conn
        req_id = next(self._ids)
        try:
            conn.send_bytes(protocol.encode_request(req_id, op, args))
            try:
                with conn.deadline_in(reply_timeout):
                    data = conn.recv_bytes(self.max_reply_bytes)
            except (socket.timeout, TimeoutError):
                raise Timeout(f"no reply to {op} within {reply_timeout:.1f}s") from None
            reply = protocol.decode_reply(data)
            if reply.get("id") != req_id:
                raise protocol.ProtocolError(f"reply id {reply.get('id')!r} does not match request {req_id}")
        except (BrowserdError, *TRANSIENT):
            # Timed out (the daemon sees us leave and cancels the job), an oversized frame
            # (the rest of it is unread), garbage or another request's reply (out of step),
            # reset or cut off: this connection is done; the next try reconnects.
            self.close()
            raise
        return protocol.raise_for_reply(reply)


def _sites_with_problems(reply) -> dict:
    # A daemon from before the problems argument answers with the list alone.
    return reply if isinstance(reply, dict) else {"sites": reply, "problems": []}


def wait_until_ready(client: Client, timeout: float) -> dict:
    """Ping until the daemon answers or ``timeout`` passes (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.ping()
        except (BrowserdError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
