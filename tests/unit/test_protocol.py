"""Wire protocol: framing, messages, errors, handshake — over real socket pairs."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from multiprocessing.connection import AuthenticationError, Connection, answer_challenge, deliver_challenge

import pytest

from browserd_client import errors, protocol, wire


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
    # The daemon tells a wrong key (the stdlib Listener's error) from a broken peer.
    assert [type(f) for f in failures] == [AuthenticationError]
    c.close()
    d.close()


def _stdlib_peer(sock, steps, *args):
    """Run the stdlib's handshake functions ``steps`` on ``sock`` in a thread; their errors."""
    conn, errors_seen = Connection(sock.detach()), []

    def run():
        try:
            for step in steps:
                step(conn, *args)
        except Exception as exc:  # noqa: BLE001
            errors_seen.append(exc)
        finally:
            conn.close()
    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors_seen


#: Our side of the handshake, the stdlib functions the peer runs in that order (what its
#: Listener.accept / Client do), and the error our side raises for a wrong key.
ROLES = {
    "client": (protocol.client_handshake, [deliver_challenge, answer_challenge], errors.AuthenticationFailed),
    "server": (protocol.server_handshake, [answer_challenge, deliver_challenge], AuthenticationError),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("their_key, ok", [(b"k", True), (b"other", False)])
def test_our_handshake_with_the_stdlib_on_the_other_side(pair, role, their_key, ok):
    ours, theirs = pair
    handshake, stdlib_steps, wrong_key = ROLES[role]
    thread, theirs_failed = _stdlib_peer(theirs.sock, stdlib_steps, their_key)
    if ok:
        handshake(ours, b"k")
    else:
        with pytest.raises(wrong_key):
            handshake(ours, b"k")
    thread.join()
    assert (theirs_failed == []) is ok


def _drive(steps, incoming: list[bytes]) -> tuple[list[bytes], object]:
    """Run wire ``steps`` against a script of incoming frames, without I/O: what they
    wrote (whole frames' bodies) and what they returned or raised."""
    stream, written, value = b"".join(wire.header(len(f)) + f for f in incoming), b"", None
    try:
        while True:
            step = steps.send(value)
            if isinstance(step, wire.Read):
                value, stream = stream[:step.size], stream[step.size:]
            else:
                written, value = written + bytes(step.data), None
    except StopIteration as done:
        outcome = done.value
    except Exception as exc:  # noqa: BLE001
        outcome = exc
    frames = []
    while written:
        size = int.from_bytes(written[:4], "big")
        frames.append(written[4:4 + size])
        written = written[4 + size:]
    return frames, outcome


def test_answers_are_those_of_python_3_11_and_3_12():
    legacy, modern = b"L" * 20, b"{sha256}" + b"M" * 40
    assert wire.answer(b"k", legacy) == hmac.new(b"k", legacy, "md5").digest()
    assert wire.answer(b"k", modern) == b"{sha256}" + hmac.new(b"k", modern, hashlib.sha256).digest()
    assert wire.verify(b"k", modern, hmac.new(b"k", modern, "md5").digest())   # a 3.11 peer's answer
    assert not wire.verify(b"k", modern, wire.answer(b"other", modern))
    assert not wire.verify(b"k", modern, b"{nosuch}" + b"x" * 32)
    with pytest.raises(errors.AuthenticationFailed):
        wire.answer(b"k", b"short")


def test_client_handshake_steps_without_io():
    """The daemon's side scripted, no socket: a 3.11 challenge, WELCOME, then a wrong
    answer to ours; a ``busy`` reply instead of a challenge; FAILURE for our answer."""
    legacy = b"C" * 20
    frames, outcome = _drive(wire.client_handshake(b"k"), [wire.CHALLENGE + legacy, wire.WELCOME, b"bad"])
    assert frames[0] == hmac.new(b"k", legacy, "md5").digest()
    assert frames[1].startswith(wire.CHALLENGE + b"{sha256}") and len(frames[1]) == 11 + 8 + 40
    assert frames[2] == wire.FAILURE and isinstance(outcome, errors.AuthenticationFailed)

    frames, outcome = _drive(wire.client_handshake(b"k"), [wire.encode_error(0, errors.Busy("full"))])
    assert frames == [] and isinstance(outcome, errors.Busy)
    frames, outcome = _drive(wire.client_handshake(b"k"), [wire.CHALLENGE + legacy, wire.FAILURE])
    assert len(frames) == 1 and "digest sent was rejected" in str(outcome)


def test_frame_steps_read_long_headers_and_refuse_negative_lengths():
    long_frame = (-1).to_bytes(4, "big", signed=True) + (3).to_bytes(8, "big") + b"abc"
    steps, reads = wire.read_frame(None), []
    step, stream = next(steps), long_frame
    with pytest.raises(StopIteration) as done:
        while True:
            reads.append(step.size)
            chunk, stream = stream[:step.size], stream[step.size:]
            step = steps.send(chunk)
    assert done.value.value == b"abc" and reads == [4, 8, 3]
    assert wire.header(1 << 31) == long_frame[:4] + (1 << 31).to_bytes(8, "big")
    steps = wire.read_frame(None)
    next(steps)
    with pytest.raises(errors.ProtocolError):
        steps.send((-5).to_bytes(4, "big", signed=True))


def test_a_reply_to_another_request_is_a_protocol_error():
    data = wire.encode_result(8, {})
    assert wire.decode_reply(data, 8)["ok"]
    with pytest.raises(errors.ProtocolError, match="does not match request 7"):
        wire.decode_reply(data, 7)


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
