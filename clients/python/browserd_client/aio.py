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
import hmac
import itertools
import logging
import os
import socket

from . import protocol
from .batch import MapResult, failure
from .client import _REPLY_GRACE, FetchResult, _fetch_request, result_from_wire, _Settings, _sites_with_problems
from .options import map_item, split_fetch_kwargs
from .errors import (
    AuthenticationFailed, FrameTooLarge, ProtocolError, Timeout,
)
from .retry import TRANSIENT, Backoff, RetryState
from .state import default_state_dir, read_authkey, read_state

logger = logging.getLogger(__name__)

_TRANSIENT = TRANSIENT + (asyncio.TimeoutError,)  # a separate class before Python 3.11

# --- the multiprocessing.connection handshake, without I/O -----------------------------------
# Python <= 3.11 challenges with 20 random bytes and expects a raw HMAC-MD5; 3.12+ with
# b"{sha256}" + 40 bytes and expects b"{sha256}" + HMAC-SHA256 (and still accepts a raw
# MD5 answer). We answer either, and challenge the 3.12 way, which both accept.
CHALLENGE, WELCOME, FAILURE = b"#CHALLENGE#", b"#WELCOME#", b"#FAILURE#"
_LEGACY_LENGTHS = (20, 16)     # an MD5-era challenge, an MD5 digest
_DIGESTS = {b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"}


def _split_digest(message: bytes) -> tuple[str, bytes]:
    """('', message) for the legacy format, else (digest name, payload) of b'{name}...'."""
    if len(message) in _LEGACY_LENGTHS:
        return "", message
    end = message.find(b"}", 1, 2 + max(map(len, _DIGESTS)))
    if message.startswith(b"{") and end > 0 and message[1:end] in _DIGESTS:
        return message[1:end].decode("ascii"), message[end + 1:]
    raise AuthenticationFailed("authentication failed: unsupported challenge or digest")


def answer(authkey: bytes, message: bytes) -> bytes:
    """Our response to the daemon's challenge ``message`` (without the CHALLENGE prefix)."""
    name, _ = _split_digest(message)
    if not name:
        return hmac.new(authkey, message, "md5").digest()
    return b"{%s}%s" % (name.encode("ascii"), hmac.new(authkey, message, name).digest())


def verify(authkey: bytes, message: bytes, response: bytes) -> bool:
    """Whether ``response`` proves the daemon knows ``authkey`` for our challenge ``message``."""
    try:
        name, mac = _split_digest(response)
    except AuthenticationFailed:
        return False
    return hmac.compare_digest(hmac.new(authkey, message, name or "md5").digest(), mac)


# --- framing over asyncio streams -------------------------------------------------------------

async def recv_frame(reader: asyncio.StreamReader, maxlength: int | None) -> bytes:
    (size,) = protocol._HEADER.unpack(await reader.readexactly(4))
    if size == -1:
        (size,) = protocol._LONG_HEADER.unpack(await reader.readexactly(8))
    if size < 0:
        raise ProtocolError(f"negative frame length {size}")
    if maxlength is not None and size > maxlength:
        raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {maxlength} bytes")
    return await reader.readexactly(size)


async def send_frame(writer: asyncio.StreamWriter, data: bytes) -> None:
    if len(data) > 0x7FFFFFFF:
        writer.write(protocol._HEADER.pack(-1) + protocol._LONG_HEADER.pack(len(data)))
    else:
        writer.write(protocol._HEADER.pack(len(data)))
    writer.write(data)
    await writer.drain()


async def client_handshake(reader, writer, authkey: bytes) -> None:
    """As :func:`protocol.client_handshake`: a daemon at its connection limit sends one
    ``busy`` reply instead of a challenge, raised as :class:`~browserd_client.errors.Busy`."""
    first = await recv_frame(reader, protocol.HANDSHAKE_FRAME_BYTES * 16)
    if not first.startswith(CHALLENGE):
        protocol.raise_for_reply(protocol.decode_reply(first))
        raise ProtocolError("the daemon sent neither a challenge nor an error")
    await send_frame(writer, answer(authkey, first[len(CHALLENGE):]))
    if await recv_frame(reader, protocol.HANDSHAKE_FRAME_BYTES) != WELCOME:
        raise AuthenticationFailed("authentication failed: digest sent was rejected")
    message = b"{sha256}" + os.urandom(40)
    await send_frame(writer, CHALLENGE + message)
    ok = verify(authkey, message, await recv_frame(reader, protocol.HANDSHAKE_FRAME_BYTES))
    await send_frame(writer, WELCOME if ok else FAILURE)
    if not ok:
        raise AuthenticationFailed("authentication failed: digest received was wrong")


class AsyncClient(_Settings):
    """:class:`~browserd_client.Client` for asyncio: same arguments, same operations
    (awaitable), same retries. One connection; calls on one AsyncClient are serialized
    (``map`` opens connections of its own). Cancelling a call closes the connection, so
    the daemon aborts the job. A connection belongs to the process (and loop) that opened
    it: in a forked child that runs its own event loop, the first call opens the child's
    own, and the parent's is left to the parent, untouched."""

    def __init__(self, address: str | dict | None = None, authkey: bytes | str | None = None, *,
                 state_dir: str | None = None, timeout: float = 60.0, connect_timeout: float = 5.0,
                 retry: Backoff | None = None, max_reply_bytes: int = protocol.MAX_REPLY_BYTES):
        super().__init__(address, authkey, state_dir, timeout, connect_timeout, retry, max_reply_bytes)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter, socket.socket] | None = None
        self._ids = itertools.count(1)
        self._lock: asyncio.Lock | None = None   # made in the running loop
        self._bind_to_process()

    def _sibling(self) -> AsyncClient:
        return AsyncClient(self._address, self._authkey, state_dir=self.state_dir, timeout=self.timeout,
                           connect_timeout=self.connect_timeout, retry=self.retry,
                           max_reply_bytes=self.max_reply_bytes)

    # -- public operations ------------------------------------------------------------

    async def ping(self) -> dict:
        return await self._call("ping", {})

    async def status(self) -> dict:
        return await self._call("status", {})

    async def sites(self, problems: bool = False):
        if not problems:
            return await self._call("sites", {})
        return _sites_with_problems(await self._call("sites", {"problems": True}))

    async def fetch(self, url: str, site: str = "generic", timeout=None, **params) -> FetchResult:
        """As :meth:`Client.fetch`: ``params={...}`` for the site, job options as keyword
        arguments (``screenshot=True``, ``data={...}``, ...), outputs in the result."""
        args, reply_timeout = _fetch_request(url, site, timeout, self.timeout, params)
        return result_from_wire(await self._call("fetch", args, reply_timeout=reply_timeout), url, site)

    async def page_source(self, url: str, site: str = "generic", timeout: float | None = None, **params) -> str:
        return (await self.fetch(url, site=site, timeout=timeout, **params)).source

    def map(self, urls, site: str = "generic", concurrency: int = 4, timeout: float | None = None, **params):
        """An async generator of :class:`MapResult`, as :meth:`Client.map`: at most
        ``concurrency`` fetches in flight, each on a task and connection of its own,
        results in completion order. Leaving it early (``aclose()``, or ``break`` inside
        ``contextlib.aclosing``) cancels the fetches in flight."""
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
                        result = failure(url, index, exc)
                    await done.put(result)
            except Exception as exc:  # noqa: BLE001 - the URL iterator raised: re-raised below
                await done.put(exc)
            finally:
                await client.close()
            await done.put(exit_mark)

        tasks = [asyncio.ensure_future(work(self._sibling())) for _ in range(concurrency)]
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

    async def _connect(self, first_try: bool):
        address, authkey = self._target(first_try)
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
            await asyncio.wait_for(client_handshake(reader, writer, authkey), self.connect_timeout)
        except BaseException:
            writer.close()
            raise
        return reader, writer, sock

    async def _call(self, op: str, args: dict, reply_timeout: float | None = None):
        reply_timeout = reply_timeout or self.timeout + _REPLY_GRACE
        self._check_process()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            state = RetryState(self.retry, _TRANSIENT, op=op, logger=logger)
            while state.next_try():
                try:
                    return await self._call_once(op, state.retry_args(op, args), reply_timeout,
                                                 first_try=state.tries == 1)
                except Exception as exc:
                    step = state.failed(exc)
                if step.error is not None:
                    raise step.error
                await asyncio.sleep(step.delay)
            raise state.give_up()

    async def _call_once(self, op: str, args: dict, reply_timeout: float, first_try: bool):
        if self._streams is None:
            self._streams = await self._connect(first_try)
        reader, writer, _ = self._streams
        req_id = next(self._ids)

        async def exchange() -> dict:
            await send_frame(writer, protocol.encode_request(req_id, op, args))
            reply = protocol.decode_reply(await recv_frame(reader, self.max_reply_bytes))
            if reply.get("id") != req_id:
                raise ProtocolError(f"reply id {reply.get('id')!r} does not match request {req_id}")
            return reply

        try:
            reply = await asyncio.wait_for(exchange(), reply_timeout)
        except asyncio.TimeoutError:
            self._drop()  # the daemon sees us leave and cancels the job
            raise Timeout(f"no reply to {op} within {reply_timeout:.1f}s") from None
        except BaseException:
            self._drop()  # cancelled, reset, oversized, garbage or another request's reply:
            raise         # the connection is out of step
        return protocol.raise_for_reply(reply)


__all__ = ["AsyncClient", "MapResult"]
