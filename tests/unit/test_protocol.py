"""Wire protocol: framing, messages, errors, handshake — over real socket pairs."""

from __future__ import annotations

import json
import socket
import threading
from multiprocessing.connection import Connection

import pytest

from browserd_client import errors, protocol


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield protocol.FrameSocket(a), protocol.FrameSocket(b)
    a.close()
    b.close()


def test_frames_are_byte_compatible_with_stdlib_connection(pair):
    ours, theirs = pair
    stdlib = Connection(theirs.sock.detach())
    try:
        ours.send_bytes(b"hello")
        assert stdlib.recv_bytes() == b"hello"
        stdlib.send_bytes(b"x" * 100_000)
        assert ours.recv_bytes() == b"x" * 100_000
    finally:
        stdlib.close()


def test_recv_rejects_frame_over_limit(pair):
    a, b = pair
    a.send_bytes(b"y" * 1000)
    with pytest.raises(errors.FrameTooLarge):
        b.recv_bytes(999)


def test_deadline_bounds_a_silent_peer(pair):
    _, b = pair
    with pytest.raises((TimeoutError, socket.timeout)):
        with b.deadline_in(0.05):
            b.recv_bytes()


def test_deadline_bounds_a_peer_that_stops_mid_frame(pair):
    a, b = pair
    a.sock.sendall((100).to_bytes(4, "big") + b"partial")
    with pytest.raises((TimeoutError, socket.timeout)):
        with b.deadline_in(0.05):
            b.recv_bytes()


def test_eof_mid_frame_is_eoferror(pair):
    a, b = pair
    a.sock.sendall((100).to_bytes(4, "big") + b"partial")
    a.sock.shutdown(socket.SHUT_WR)
    with pytest.raises(EOFError):
        b.recv_bytes()


def test_handshake_succeeds_with_same_key_and_fails_with_other(pair):
    a, b = pair
    t = threading.Thread(target=protocol.server_handshake, args=(a, b"k1"))
    t.start()
    protocol.client_handshake(b, b"k1")
    t.join()

    c, d = socket.socketpair()
    server, client = protocol.FrameSocket(c), protocol.FrameSocket(d)
    failures = []

    def serve():
        try:
            protocol.server_handshake(server, b"k1")
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    t = threading.Thread(target=serve)
    t.start()
    with pytest.raises(errors.AuthenticationFailed):
        protocol.client_handshake(client, b"other")
    t.join()
    assert failures
    c.close()
    d.close()


def test_busy_frame_instead_of_challenge_raises_busy(pair):
    a, b = pair
    a.send_bytes(protocol.encode_error(0, errors.Busy("full")))
    with pytest.raises(errors.Busy):
        protocol.client_handshake(b, b"k")


@pytest.mark.parametrize("data, error", [
    (b"\xff\xfe", errors.BadRequest),
    (b"not json", errors.BadRequest),
    (b"[]", errors.BadRequest),
    (json.dumps({"v": 2, "op": "ping"}).encode(), errors.UnsupportedVersion),
    (json.dumps({"op": "ping"}).encode(), errors.UnsupportedVersion),
    (json.dumps({"v": 1, "op": ""}).encode(), errors.BadRequest),
    (json.dumps({"v": 1, "op": "ping", "args": []}).encode(), errors.BadRequest),
    (json.dumps({"v": 1, "id": "x", "op": "ping"}).encode(), errors.BadRequest),
])
def test_decode_request_rejects_bad_requests(data, error):
    with pytest.raises(error):
        protocol.decode_request(data)


def test_request_roundtrip():
    req = protocol.decode_request(protocol.encode_request(7, "fetch", {"url": "https://x/"}))
    assert (req.id, req.op, req.args) == (7, "fetch", {"url": "https://x/"})


def test_every_error_class_roundtrips_through_the_wire():
    for code, cls in errors.ERROR_CLASSES.items():
        reply = protocol.decode_reply(protocol.encode_error(1, cls("boom")))
        with pytest.raises(cls) as info:
            protocol.raise_for_reply(reply)
        assert info.value.code == code and info.value.retryable == cls.retryable


def test_unknown_error_code_is_still_an_error():
    reply = {"v": 1, "id": 1, "ok": False, "error": {"code": "future_code", "message": "m", "retryable": True}}
    with pytest.raises(errors.BrowserdError) as info:
        protocol.raise_for_reply(reply)
    assert info.value.code == "future_code" and info.value.retryable


def test_only_busy_shutting_down_unavailable_and_proxy_failed_are_retryable():
    retryable = {code for code, cls in errors.ERROR_CLASSES.items() if cls.retryable}
    assert retryable == {"busy", "shutting_down", "unavailable", "proxy_failed"}


@pytest.mark.parametrize("text, address", [
    ("127.0.0.1:4000", {"family": "AF_INET", "host": "127.0.0.1", "port": 4000}),
    ("[::1]:4000", {"family": "AF_INET", "host": "::1", "port": 4000}),
    ("unix:/run/b.sock", {"family": "AF_UNIX", "path": "/run/b.sock"}),
    ("/run/b.sock", {"family": "AF_UNIX", "path": "/run/b.sock"}),
])
def test_address_parse_and_format(text, address):
    assert protocol.parse_address(text) == address
    assert protocol.parse_address(protocol.format_address(address)) == address


def test_bad_address_is_a_clear_error():
    with pytest.raises(ValueError, match="neither HOST:PORT"):
        protocol.parse_address("localhost")
