"""The asyncio client: native asyncio streams, the same wire format, handshake and retries
as the blocking :class:`~browserd_client.Client`; nothing here blocks the event loop
(apart from reading the two small state files when connecting).

    async with AsyncClient() as client:
        page = await client.fetch("https://example.org/", wait_for="#content")
        async for r in client.map(urls, concurrency=4):
            print(r.url, r.ok, r.code)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket

from . import protocol, wire
from .errors import Timeout
from .ops import REPLY_GRACE, FetchResult, MapResult, fetch_request, map_failure, result_from_wire, sites_with_problems
from .options import map_item, split_fetch_kwargs
from .retry import TRANSIENT, Backoff, RetryState
from .settings import Settings

logger = logging.getLogger(__name__)

_TRANSIENT = TRANSIENT + (asyncio.TimeoutError,)  # a separate class before Python 3.11


# --- the wire steps over asyncio streams ----------------------------------------------------

async def run(steps: wire.Steps, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    """Drive the wire ``steps`` (a frame, a handshake) on a stream pair; their result.
    The end of the stream raises ``asyncio.IncompleteReadError`` (an ``EOFError``)."""
    value = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration as done:
            return done.value
        if isinstance(step, wire.Read):
            value = await reader.readexactly(step.size)
        else:
            writer.write(step.data)
            await writer.drain()
            value = None


async def recv_frame(reader: asyncio.StreamReader, maxlength: int | None) -> bytes:
    """One frame's bytes (:class:`~browserd_client.errors.FrameTooLarge` over ``maxlength``)."""
    return await run(wire.read_frame(maxlength), reader, None)


async def send_frame(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write ``data`` as one frame and wait until the stream's buffer drained."""
    await run(wire.write_frame(data), None, writer)


class AsyncClient(Settings):
    """:class:`~browserd_client.Client` for asyncio: same arguments, same operations
    (awaitable), same retries, same errors. One connection; calls on one AsyncClient are
    serialized (``map`` opens connections of its own). Cancelling a call closes the
    connection, so the daemon aborts the job.

    Not thread-safe: use an AsyncClient from one event loop (its connection and lock are
    made in the loop of its first call). Fork-safe: a connection belongs to the process
    (and loop) that opened it; in a forked child that runs its own event loop, the first
    call opens the child's own, and the parent's is left to the parent, untouched."""

    def __init__(self, address: str | dict | None = None, authkey: bytes | str | None = None, *,
                 state_dir: str | None = None, timeout: float = 60.0, connect_timeout: float = 5.0,
                 retry: Backoff | None = None, max_reply_bytes: int = protocol.MAX_REPLY_BYTES):
        super().__init__(address, authkey, state_dir=state_dir, timeout=timeout, connect_timeout=connect_timeout,
                         retry=retry, max_reply_bytes=max_reply_bytes)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter, socket.socket] | None = None
        self._ids = itertools.count(1)
        self._lock: asyncio.Lock | None = None   # made in the running loop
        self._bind_to_process()

    # -- public operations ------------------------------------------------------------

    async def ping(self) -> dict:
        """As :meth:`Client.ping <browserd_client.Client.ping>`."""
        return await self._call("ping", {})

    async def status(self) -> dict:
        """As :meth:`Client.status <browserd_client.Client.status>`."""
        return await self._call("status", {})

    async def sites(self, problems: bool = False):
        """As :meth:`Client.sites <browserd_client.Client.sites>`."""
        if not problems:
            return await self._call("sites", {})
        return sites_with_problems(await self._call("sites", {"problems": True}))

    async def fetch(self, url: str, site: str = "generic", timeout=None, **params) -> FetchResult:
        """As :meth:`Client.fetch <browserd_client.Client.fetch>`: the page of ``url`` as a
        :class:`~browserd_client.FetchResult`, or the job's error raised; ``params={...}``
        for the site, job options as keyword arguments (``screenshot=True``,
        ``data={...}``, ...), outputs in the result."""
        args, reply_timeout = fetch_request(url, site, timeout, self.timeout, params)
        return result_from_wire(await self._call("fetch", args, reply_timeout=reply_timeout), url, site)

    async def page_source(self, url: str, site: str = "generic", timeout: float | None = None, **params) -> str:
        """The rendered source of ``url``: :meth:`fetch`'s ``source``."""
        return (await self.fetch(url, site=site, timeout=timeout, **params)).source

    def map(self, urls, site: str = "generic", concurrency: int = 4, timeout: float | None = None, **params):
        """An async generator of :class:`~browserd_client.MapResult`, as
        :meth:`Client.map <browserd_client.Client.map>`: at most ``concurrency`` fetches in
        flight, each on a task and connection of its own, results in completion order,
        failures as values. Leaving it early (``aclose()``, or ``break`` inside
        ``contextlib.aclosing``) cancels the fetches in flight. Raises ``ValueError`` for a
        ``concurrency`` below 1."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        split_fetch_kwargs(params)  # a bad option fails the call, not each URL
        return self._map(urls, site, concurrency, timeout, params)

    async def _map(self, urls, site, concurrency, timeout, params):
        source = enumerate(urls)
        done: asyncio.Queue = asyncio.Queue(maxsize=concurrency)   # back-pressure
        exit_mark = object()

        async def work(client: AsyncClient) -> None:
            try:
                for index, item in source:
                    url, item_site, item_params = map_item(item, site, params)
                    try:
                        page = await client.fetch(url, site=item_site, timeout=timeout, **item_params)
                        result = MapResult(url, True, page, index=index)
                    except Exception as exc:  # noqa: BLE001 - a batch never aborts on one URL
                        result = map_failure(url, index, exc)
                    await done.put(result)
            except Exception as exc:  # noqa: BLE001 - the URL iterator raised: re-raised below
                await done.put(exc)
            finally:
                await client.close()
            await done.put(exit_mark)

        tasks = [asyncio.ensure_future(work(AsyncClient(**self.settings()))) for _ in range(concurrency)]
        try:
            running = len(tasks)
            while running:
                item = await done.get()
                if item is exit_mark:
                    running -= 1
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        self._check_process()
        self._drop()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # -- machinery --------------------------------------------------------------------

    def _drop(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    def _after_fork_in_child(self) -> None:
        # The streams live in the parent's event loop: closing the writer would unregister
        # the socket from the epoll instance the child shares with the parent. Close only
        # our descriptor; the transport, which holds the same socket object, then has none.
        if self._streams is not None:
            self._streams[2].close()
            self._streams = None
        self._lock = None

    async def _connect(self):
        address, authkey = self.target()
        sock, target = protocol.stream_socket(address)   # ours, so a forked child can close it
        try:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, target), self.connect_timeout)
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        try:
            await asyncio.wait_for(run(wire.client_handshake(authkey), reader, writer), self.connect_timeout)
        except BaseException:
            writer.close()
            raise
        return reader, writer, sock

    async def _call(self, op: str, args: dict, reply_timeout: float | None = None):
        reply_timeout = reply_timeout or self.timeout + REPLY_GRACE
        self._check_process()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            state = RetryState(self.retry, _TRANSIENT, op=op, logger=logger)
            while state.next_try():
                try:
                    return await self._call_once(op, state.retry_args(op, args), reply_timeout)
                except Exception as exc:
                    step = state.failed(exc)
                if step.error is not None:
                    raise step.error
                await asyncio.sleep(step.delay)
            raise state.give_up()

    async def _call_once(self, op: str, args: dict, reply_timeout: float):
        if self._streams is None:
            self._streams = await self._connect()
        reader, writer, _ = self._streams
        req_id = next(self._ids)

        async def exchange() -> dict:
            await send_frame(writer, wire.encode_request(req_id, op, args))
            return wire.decode_reply(await recv_frame(reader, self.max_reply_bytes), req_id)

        try:
            reply = await asyncio.wait_for(exchange(), reply_timeout)
        except asyncio.TimeoutError:
            self._drop()  # the daemon sees us leave and cancels the job
            raise Timeout(f"no reply to {op} within {reply_timeout:.1f}s") from None
        except BaseException:
            self._drop()  # cancelled, reset, oversized, garbage or another request's reply:
            raise         # the connection is out of step
        return wire.raise_for_reply(reply)


__all__ = ["AsyncClient", "MapResult"]
