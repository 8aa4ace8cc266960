"""Fetching many URLs at once: ``Client.map`` runs K worker threads, each with a
connection of its own, and yields one :class:`MapResult` per URL as each finishes.

Bounded: a worker takes the next URL only when the consumer has taken a result off the
queue, so at most K fetches run and at most K results wait to be read. Closing the
generator early (``break`` in a ``for`` loop, ``gen.close()``) aborts the fetches that
are running (the daemon sees their connections close and frees the browsers) and ends
every worker thread.
"""

from __future__ import annotations

import itertools
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from .client import Client, FetchResult
from .errors import BrowserdError
from .options import map_item

#: Seconds ``close()`` of a map waits for its workers to leave (each is aborted first).
_JOIN_TIMEOUT = 10.0
_map_ids = itertools.count(1)


@dataclass(frozen=True)
class MapResult:
    """The outcome of one URL of a batch: a page (``ok``) or an error code, never an exception."""

    url: str
    ok: bool
    result: FetchResult | None = None   #: the page, when ok
    code: str | None = None             #: wire error code (``load_failed``, ``forbidden_url``, ...)
    message: str | None = None
    index: int = 0                      #: position of the URL in the input


def failure(url: str, index: int, exc: Exception) -> MapResult:
    """The :class:`MapResult` of a URL whose fetch raised ``exc``."""
    if isinstance(exc, BrowserdError):
        return MapResult(url, False, code=exc.code, message=exc.message, index=index)
    if isinstance(exc, (TypeError, ValueError)):  # the item's options, checked by the client
        return MapResult(url, False, code="bad_request", message=str(exc), index=index)
    return MapResult(url, False, code="internal", message=f"{type(exc).__name__}: {exc}", index=index)


class _Cancelled(BrowserdError):
    """The map was closed while this fetch ran."""

    code = "cancelled"


class _WorkerClient(Client):
    """A Client that ``abort()`` (from another thread) can stop mid-call: the socket is
    shut down and every later try raises :class:`_Cancelled` (not retryable)."""

    def __init__(self, parent: Client, stop: threading.Event):
        self._stop = stop
        self._live = None
        super().__init__(parent._address, parent._authkey, state_dir=parent.state_dir,
                         timeout=parent.timeout, connect_timeout=parent.connect_timeout,
                         retry=parent.retry, max_reply_bytes=parent.max_reply_bytes)

    def _after_fork_in_child(self):
        self._live = None  # abort() must never shut down the parent's socket
        super()._after_fork_in_child()

    def _connect(self, first_try):
        conn = self._live = super()._connect(first_try)
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


def map_urls(parent: Client, urls: Iterable[str], site: str, concurrency: int,
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
                    result = failure(url, index, exc)
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
