"""The blocking Python client: stdlib only, safe to vendor into any scraper.

:class:`Client` keeps one connection and serializes the calls of the threads that share
it; :meth:`Client.map` fetches many URLs at once on worker threads, each with a
connection of its own, and yields one :class:`~browserd_client.MapResult` per URL as each
finishes.
"""

from __future__ import annotations

import itertools
import logging
import queue
import socket
import threading
import time
from typing import Iterable, Iterator

from . import protocol, wire
from .errors import BrowserdError, Timeout
from .ops import REPLY_GRACE, FetchResult, MapResult, fetch_request, map_failure, result_from_wire, sites_with_problems
from .options import map_item, split_fetch_kwargs
from .retry import TRANSIENT, Backoff, RetryState
from .settings import Settings

logger = logging.getLogger(__name__)

#: Seconds ``close()`` of a map waits for its workers to leave (each is aborted first).
_JOIN_TIMEOUT = 10.0
_map_ids = itertools.count(1)


class Client(Settings):
    """A connection to a browserd daemon, reused across calls and re-opened as needed.

    With no ``address``/``authkey`` both are read from the daemon's state directory
    (``state_dir``, ``$BROWSERD_STATE_DIR`` or the default); the arguments are those of
    :class:`~browserd_client.settings.Settings`. Refused or reset connections, failed
    handshakes and ``busy``/``shutting_down`` replies are retried with exponential backoff
    and full jitter (``retry``); bad requests never are; a call that gives up raises the
    daemon's last refusal, or :class:`~browserd_client.Unavailable`.

    Thread-safe: one Client may be shared by threads; calls on it are serialized. Fork-safe:
    a connection belongs to the process that opened it; in a forked child (``os.fork``, a
    ``fork`` multiprocessing pool) the first call opens the child's own, and the parent's is
    left to the parent, untouched.
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
        super().__init__(address, authkey, state_dir=state_dir, timeout=timeout, connect_timeout=connect_timeout,
                         retry=retry, max_reply_bytes=max_reply_bytes)
        self._conn: protocol.FrameSocket | None = None
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._bind_to_process()

    # -- public operations ------------------------------------------------------------

    def ping(self) -> dict:
        """``{"pong": True, "version", "protocol", "pid", "draining"}``: the daemon is up
        (``draining``: it is stopping and takes no new jobs)."""
        return self._call("ping", {})

    def status(self) -> dict:
        """The daemon's ``status`` reply (a dict): its browsers, queue, connections and
        counters, as ``browserd status --json`` prints it."""
        return self._call("status", {})

    def metrics(self) -> str:
        """The daemon's metrics in Prometheus text format (what its ``/metrics`` serves)."""
        return self._call("metrics", {})["text"]

    def sites(self, problems: bool = False):
        """The loaded site classes, a list of dicts; with ``problems=True``
        ``{"sites": [...], "problems": [...]}``, with the load's problems too."""
        if not problems:
            return self._call("sites", {})
        return sites_with_problems(self._call("sites", {"problems": True}))

    def fetch(self, url: str, site: str = "generic", timeout=None, **params) -> FetchResult:
        """Load ``url`` in a warm browser through site class ``site``; return the page.

        ``timeout``: seconds (capped by the daemon at the site's), None for this client's
        ``timeout``, or :data:`~browserd_client.SITE_TIMEOUT` to send none.

        Keyword arguments: ``params={...}``, the site class's params (``wait_for="#content"``,
        ...); job options by name (``method``, ``data``, ``headers``, ``cookies``,
        ``user_agent``, ``viewport``, ``locale``, ``timezone``, ``wait_until``, ``settle_ms``,
        ``screenshot``, ``pdf``, ``evaluate``, ``capture``, ``capture_max_bytes``,
        ``cookies_out``, ``proxy``, ``proxy_pool``; see
        :func:`browserd_client.options.job_options`); any other keyword is a site param as
        well. Outputs land in the result (``screenshot``, ``pdf`` as bytes, ``value``,
        ``responses``, ``cookies``). A bad option raises TypeError or ValueError here, or
        :class:`~browserd_client.BadRequest` from the daemon; a throwing ``evaluate`` raises
        :class:`~browserd_client.ScriptError`. Raises the
        :class:`~browserd_client.BrowserdError` of a failed job (``LoadFailed``,
        ``Timeout``, ``ForbiddenUrl``, ...) once retries are spent."""
        args, reply_timeout = fetch_request(url, site, timeout, self.timeout, params)
        return result_from_wire(self._call("fetch", args, reply_timeout=reply_timeout), url, site)

    def page_source(self, url: str, site: str = "generic", timeout: float | None = None, **params) -> str:
        """The rendered source of ``url``: :meth:`fetch`'s ``source``."""
        return self.fetch(url, site=site, timeout=timeout, **params).source

    def map(self, urls, site: str = "generic", concurrency: int = 4, timeout: float | None = None, **params):
        """Fetch every URL of ``urls`` with at most ``concurrency`` jobs in flight; yield one
        :class:`~browserd_client.MapResult` per URL, in completion order. A failed URL is a
        result with ``ok=False`` and its error ``code``, never an exception; an exception
        of the ``urls`` iterator itself is raised by the generator.

        Each of the ``concurrency`` worker threads has a connection of its own (this
        client's settings, not its connection). ``urls`` is read lazily. Bounded: a worker
        takes the next URL only when the consumer has taken a result, so at most
        ``concurrency`` fetches run and at most as many results wait. Closing the generator
        early (``break``, ``close()``) aborts the fetches in flight (the daemon sees their
        connections close and frees the browsers) and ends the threads. Raises
        ``ValueError`` for a ``concurrency`` below 1.

        Keyword arguments as :meth:`fetch` (checked now, TypeError/ValueError), for every
        URL; an item of ``urls`` may also be a dict ``{"url", "site"?, "params"?,
        "options"?}`` (options: job option keyword arguments) whose keys replace those of
        the call for that URL.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        split_fetch_kwargs(params)  # a bad option fails the call, not each URL
        return _map_urls(self, urls, site, concurrency, timeout, params)

    def close(self) -> None:
        """Close the connection (the next call opens a new one). Waits for a call in
        flight on another thread to finish."""
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

    def _connect(self) -> protocol.FrameSocket:
        address, authkey = self.target()
        conn = protocol.FrameSocket(protocol.connect(address, self.connect_timeout))
        try:
            with conn.deadline_in(self.connect_timeout):
                protocol.client_handshake(conn, authkey)
        except BaseException:
            conn.close()
            raise
        return conn

    def _call(self, op: str, args: dict, reply_timeout: float | None = None):
        reply_timeout = reply_timeout or self.timeout + REPLY_GRACE
        self._check_process()
        with self._lock:
            state = RetryState(self.retry, op=op, logger=logger)
            while state.next_try():
                try:
                    return self._call_once(op, state.retry_args(op, args), reply_timeout)
                except Exception as exc:
                    step = state.failed(exc)
                if step.error is not None:
                    raise step.error
                time.sleep(step.delay)
            raise state.give_up()

    def _call_once(self, op: str, args: dict, reply_timeout: float):
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        req_id = next(self._ids)
        try:
            conn.send_bytes(wire.encode_request(req_id, op, args))
            try:
                with conn.deadline_in(reply_timeout):
                    data = conn.recv_bytes(self.max_reply_bytes)
            except (socket.timeout, TimeoutError):
                raise Timeout(f"no reply to {op} within {reply_timeout:.1f}s") from None
            reply = wire.decode_reply(data, req_id)
        except (BrowserdError, *TRANSIENT):
            # Timed out (the daemon sees us leave and cancels the job), an oversized frame
            # (the rest of it is unread), garbage or another request's reply (out of step),
            # reset or cut off: this connection is done; the next try reconnects.
            self.close()
            raise
        return wire.raise_for_reply(reply)


def wait_until_ready(client: Client, timeout: float) -> dict:
    """Ping until the daemon answers or ``timeout`` seconds pass (for scripts and tests);
    the ping reply, or the last error once the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.ping()
        except (BrowserdError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- Client.map: worker threads ------------------------------------------------------------

class _Cancelled(BrowserdError):
    """The map was closed while this fetch ran."""

    code = "cancelled"


class _WorkerClient(Client):
    """A Client that ``abort()`` (from another thread) can stop mid-call: the socket is
    shut down and every later try raises :class:`_Cancelled` (not retryable)."""

    def __init__(self, parent: Client, stop: threading.Event):
        self._stop = stop
        self._live = None
        super().__init__(**parent.settings())

    def _after_fork_in_child(self):
        self._live = None  # abort() must never shut down the parent's socket
        super()._after_fork_in_child()

    def _connect(self):
        conn = self._live = super()._connect()
        if self._stop.is_set():  # abort() may have looked before _live was set
            conn.close()
            raise _Cancelled()
        return conn

    def _call_once(self, *args, **kwargs):
        if self._stop.is_set():
            raise _Cancelled()
        return super()._call_once(*args, **kwargs)

    def abort(self) -> None:
        conn = self._live
        if conn is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _map_urls(parent: Client, urls: Iterable[str], site: str, concurrency: int,
              timeout: float | None, params: dict) -> Iterator[MapResult]:
    """The generator behind :meth:`Client.map` (see there)."""
    source = enumerate(urls)
    take = threading.Lock()            # the URL iterator is not thread-safe
    done: queue.SimpleQueue = queue.SimpleQueue()
    permits = threading.Semaphore(concurrency)
    stop = threading.Event()
    clients = [_WorkerClient(parent, stop) for _ in range(concurrency)]
    exit_mark = object()

    def work(client: _WorkerClient) -> None:
        try:
            while permits.acquire() and not stop.is_set():
                with take:
                    item = next(source, None)
                if item is None:
                    return
                index, (url, item_site, item_params) = item[0], map_item(item[1], site, params)
                try:
                    result = MapResult(url, True, client.fetch(url, site=item_site, timeout=timeout, **item_params),
                                       index=index)
                except _Cancelled:
                    return
                except Exception as exc:  # noqa: BLE001 - a batch never aborts on one URL
                    result = map_failure(url, index, exc)
                done.put(result)
        except BaseException as exc:  # noqa: BLE001 - the URL iterator raised: re-raised by the consumer
            done.put(exc)
        finally:
            client.close()
            done.put(exit_mark)

    name = f"browserd-map-{next(_map_ids)}"
    threads = [threading.Thread(target=work, args=(c,), name=f"{name}-{i}", daemon=True)
               for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    try:
        running = len(threads)
        while running:
            item = done.get()
            if item is exit_mark:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                permits.release()
                yield item
    finally:
        stop.set()
        for c in clients:
            c.abort()
        for _ in threads:
            permits.release()
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))


__all__ = ["Client", "wait_until_ready"]
