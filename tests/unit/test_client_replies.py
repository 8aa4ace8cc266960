"""A reply is matched to its request, and a connection belongs to the process that opened
it: fake connections, and one real fork()."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import pytest

from browserd_client import Backoff, Client, ProtocolError, protocol, wire
from browserd_client.aio import AsyncClient
from tests.support.forking import collect, fork_child


class FakeConn:
    """A :class:`~browserd_client.protocol.FrameSocket` stand-in that answers each request
    with the frame ``answer(request)`` makes."""

    def __init__(self, answer):
        self.answer, self.sent, self.closed, self._replies = answer, [], False, []

    def deadline_in(self, seconds):
        return contextlib.nullcontext(self)

    def send_bytes(self, data: bytes) -> None:
        request = protocol.decode_request(data)
        self.sent.append(request)
        self._replies.append(self.answer(request))

    def recv_bytes(self, maxlength=None) -> bytes:
        return self._replies.pop(0)

    def close(self) -> None:
        self.closed = True


def page(req_id: int, source: str) -> bytes:
    return protocol.encode_result(req_id, {"source": source, "url": "http://127.0.0.1/"})


def answering(*conns) -> Client:
    client = Client("127.0.0.1:9", b"key", retry=Backoff(attempts=1))
    pending = list(conns)
    client._connect = lambda: pending.pop(0)
    return client


OUT_OF_STEP = {
    "another request's reply": lambda req: page(req.id + 1, "ANOTHER REQUEST'S PAGE"),
    "not JSON": lambda req: b"\xff half a page",
}


@pytest.mark.parametrize("reply", OUT_OF_STEP.values(), ids=OUT_OF_STEP.keys())
def test_a_reply_not_to_the_request_is_a_protocol_error_that_closes_the_connection(reply):
    wrong, right = FakeConn(reply), FakeConn(lambda req: page(req.id, "MY PAGE"))
    client = answering(wrong, right)
    with pytest.raises(ProtocolError):
        client.fetch("http://127.0.0.1/")
    assert wrong.closed and client._conn is None
    assert client.fetch("http://127.0.0.1/").source == "MY PAGE"   # on a new connection
    assert not right.closed and len(right.sent) == 1


@pytest.mark.parametrize("reply", OUT_OF_STEP.values(), ids=OUT_OF_STEP.keys())
def test_async_a_reply_not_to_the_request_is_a_protocol_error_that_closes_the_connection(reply):
    async def scenario():
        ours, daemon = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        client = AsyncClient("127.0.0.1:9", b"key", retry=Backoff(attempts=1))

        async def connect():
            return reader, writer, ours
        client._connect = connect
        frame = reply(protocol.Request(1, "fetch", {}))   # the reply to our first request's id
        daemon.sendall(wire.header(len(frame)) + frame)
        with pytest.raises(ProtocolError):
            await client.fetch("http://127.0.0.1/")
        assert client._streams is None
        await writer.wait_closed()
        daemon.settimeout(5)
        received = b"".join(iter(lambda: daemon.recv(1 << 16), b""))   # to EOF: we hung up
        daemon.close()
        return received

    assert b'"op":"fetch"' in asyncio.run(scenario())


def test_forked_child_leaves_the_inherited_connection_and_lock_to_the_parent():
    """A parent thread holds the client's lock and its connection when the process forks:
    the child gets a fresh lock and connection at once, and never reads, writes or shuts
    down the inherited socket; the parent's connection goes on working."""
    ours, daemon = socket.socketpair()
    client = answering()
    client._conn = protocol.FrameSocket(ours)
    holding, done = threading.Event(), threading.Event()

    def hold_the_lock():
        with client._lock:
            holding.set()
            done.wait(30)
    thread = threading.Thread(target=hold_the_lock)
    thread.start()
    try:
        assert holding.wait(30)

        def in_child():
            inherited_closed = client._conn is None and ours.fileno() == -1
            fresh = FakeConn(lambda req: page(req.id, "CHILD PAGE"))
            client._connect = lambda: fresh
            return [inherited_closed, client.fetch("http://127.0.0.1/").source]
        (result,) = collect([fork_child(in_child)], timeout=30)
    finally:
        done.set()
        thread.join(30)
    assert result == [True, "CHILD PAGE"]
    daemon.setblocking(False)
    with pytest.raises(BlockingIOError):
        daemon.recv(1)                  # the child sent nothing, and did not hang up
    ours.sendall(b"still ours")
    assert daemon.recv(100) == b"still ours"
    ours.close()
    daemon.close()
