"""The browserd wire protocol: the only module the daemon and its clients share.

Transport: a stream socket (TCP on loopback, or AF_UNIX) speaking the framing and the
HMAC authkey handshake of :mod:`multiprocessing.connection`, so the stdlib's
``multiprocessing.connection.Client(address, authkey=...)`` can talk to the daemon too.
Each frame is a 4-byte big-endian signed length (or -1 followed by an 8-byte length)
and that many bytes. Unlike the stdlib ``Connection``, :class:`FrameSocket` works with
deadlines, so neither side can be held forever by a silent or trickling peer.

Messages are UTF-8 JSON objects, never pickles::

    request  {"v": 1, "id": 7, "op": "fetch", "args": {"url": "https://example.org/"}}
    reply    {"v": 1, "id": 7, "ok": true, "result": {...}}
    error    {"v": 1, "id": 7, "ok": false,
              "error": {"code": "busy", "message": "...", "retryable": true}}

Several requests may be sent, one after the other, on one connection.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import (
    AuthenticationError,
    answer_challenge,
    deliver_challenge,
)

from .errors import (
    AuthenticationFailed,
    BadRequest,
    BrowserdError,
    FrameTooLarge,
    ProtocolError,
    UnsupportedVersion,
    error_from_wire,
)

PROTOCOL_VERSION = 1
#: Largest request a daemon accepts by default (a request carries a URL and a few params).
MAX_REQUEST_BYTES = 1 << 20
#: Largest reply a client accepts by default (a reply carries a whole page source).
MAX_REPLY_BYTES = 64 << 20
#: Handshake frames are tiny; the stdlib reads them with a 256-byte limit.
HANDSHAKE_FRAME_BYTES = 256
#: Operations every daemon of this protocol version serves.
OPS = ("ping", "fetch", "status", "sites", "metrics")

_HEADER = struct.Struct("!i")
_LONG_HEADER = struct.Struct("!Q")


class FrameSocket:
    """Length-prefixed frames over a socket, with an optional deadline for every call.

    ``send_bytes``/``recv_bytes`` have the stdlib ``Connection`` signatures, so the
    stdlib handshake functions accept this object as it is.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline: float | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    @contextmanager
    def deadline_in(self, seconds: float | None):
        """Bound every send and receive inside the block by one total deadline."""
        saved = self.deadline
        self.deadline = None if seconds is None else time.monotonic() + seconds
        try:
            yield self
        finally:
            self.deadline = saved

    def _arm(self) -> None:
        if self.deadline is None:
            self.sock.settimeout(None)
            return
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining)

    def send_bytes(self, data: bytes) -> None:
        data = bytes(data)
        if len(data) > 0x7FFFFFFF:
            header = _HEADER.pack(-1) + _LONG_HEADER.pack(len(data))
        else:
            header = _HEADER.pack(len(data))
        view = memoryview(header + data) if len(data) < 16384 else None
        if view is not None:
            self._send_all(view)
        else:
            self._send_all(memoryview(header))
            self._send_all(memoryview(data))

    def _send_all(self, view: memoryview) -> None:
        while view:
            self._arm()
            sent = self.sock.send(view)
            view = view[sent:]

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        (size,) = _HEADER.unpack(self._recv_exact(4))
        if size == -1:
            (size,) = _LONG_HEADER.unpack(self._recv_exact(8))
        if size < 0:
            raise ProtocolError(f"negative frame length {size}")
        if maxlength is not None and size > maxlength:
            raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {maxlength} bytes")
        return bytes(self._recv_exact(size))

    def _recv_exact(self, size: int) -> bytearray:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            self._arm()
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise EOFError("peer closed the connection" if got == 0 else "peer closed mid-frame")
            got += n
        return buf

    def close(self) -> None:
        """Close this process's descriptor; never ``shutdown()``, so closing a socket
        inherited across ``fork()`` leaves the other process's connection alone."""
        try:
            self.sock.close()
        except OSError:
            pass


# --- handshake -----------------------------------------------------------------------

def server_handshake(conn: FrameSocket, authkey: bytes, on_answered=None) -> None:
    """The daemon's side of the multiprocessing handshake (challenge, then answer).

    Every malformed step raises :class:`AuthenticationError` (the stdlib's
    ``answer_challenge`` would ``assert`` on a challenge without its prefix);
    ``on_answered()`` is called once the peer answered our challenge correctly."""
    deliver_challenge(conn, authkey)
    if on_answered is not None:
        on_answered()
    challenge = conn.recv_bytes(HANDSHAKE_FRAME_BYTES)
    if not challenge.startswith(b"#CHALLENGE#") or len(challenge) == len(b"#CHALLENGE#"):
        raise AuthenticationError("the peer's challenge is malformed")
    answer_challenge(_Replay(conn, challenge), authkey)


class _Replay:
    """Hands a frame already read back to the stdlib handshake, then reads on."""

    def __init__(self, conn: FrameSocket, first: bytes):
        self.conn, self.first = conn, first

    def recv_bytes(self, maxlength=None):
        if self.first is not None:
            first, self.first = self.first, None
            return first
        return self.conn.recv_bytes(maxlength)

    def send_bytes(self, data):
        self.conn.send_bytes(data)


def client_handshake(conn: FrameSocket, authkey: bytes) -> None:
    """The client's side. A daemon at its connection limit sends one ``busy`` reply
    instead of a challenge; that is raised as :class:`~browserd_client.errors.Busy`."""
    first = conn.recv_bytes(HANDSHAKE_FRAME_BYTES * 16)
    if not first.startswith(b"#CHALLENGE#"):
        raise_for_reply(decode_reply(first))
        raise ProtocolError("the daemon sent neither a challenge nor an error")
    try:
        answer_challenge(_Replay(conn, first), authkey)
        deliver_challenge(conn, authkey)
    except AuthenticationError as exc:
        raise AuthenticationFailed(f"authentication failed: {exc}") from None


# --- messages --------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_request(req_id: int, op: str, args: dict | None = None) -> bytes:
    return _dumps({"v": PROTOCOL_VERSION, "id": req_id, "op": op, "args": args or {}})


def decode_request(data: bytes) -> Request:
    """Parse one request frame; raise a :class:`BadRequest` subclass saying what is wrong."""
    try:
        msg = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"request is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("request is nested too deeply") from None
    if not isinstance(msg, dict):
        raise BadRequest("request must be a JSON object")
    version = msg.get("v")
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersion(
            f"protocol version {version!r} is not supported (this daemon speaks {PROTOCOL_VERSION})"
        )
    req_id = msg.get("id", 0)
    if not isinstance(req_id, int) or isinstance(req_id, bool):
        raise BadRequest("'id' must be an integer")
    op = msg.get("op")
    if not isinstance(op, str) or not op:
        raise BadRequest("'op' must be a non-empty string")
    args = msg.get("args", {})
    if not isinstance(args, dict):
        raise BadRequest("'args' must be a JSON object")
    return Request(req_id, op, args)


def request_id_of(data: bytes) -> int:
    """Best-effort id of a request that failed to parse, so the error can echo it."""
    try:
        req_id = json.loads(data).get("id", 0)
        return req_id if isinstance(req_id, int) else 0
    except Exception:
        return 0


def encode_result(req_id: int, result) -> bytes:
    return _dumps({"v": PROTOCOL_VERSION, "id": req_id, "ok": True, "result": result})


def encode_error(req_id: int, error: BrowserdError) -> bytes:
    return _dumps({"v": PROTOCOL_VERSION, "id": req_id, "ok": False, "error": error.to_wire()})


def decode_reply(data: bytes) -> dict:
    try:
        msg = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"reply is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("reply is nested too deeply") from None
    if not isinstance(msg, dict) or "ok" not in msg:
        raise ProtocolError("reply is not a browserd reply object")
    if msg.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"daemon speaks protocol version {msg.get('v')!r}, not {PROTOCOL_VERSION}")
    return msg


def raise_for_reply(msg: dict):
    """Return the result of a reply, or raise the error it carries."""
    if msg.get("ok"):
        return msg.get("result")
    error = msg.get("error")
    if not isinstance(error, dict):
        raise ProtocolError("error reply without an error object")
    raise error_from_wire(error)


# --- addresses -------------------------------------------------------------------------

def format_address(address: dict) -> str:
    """``127.0.0.1:40123`` or ``unix:/run/browserd/browserd.sock``."""
    if address.get("family") == "AF_UNIX":
        return "unix:" + address["path"]
    host = address["host"]
    return f"[{host}]:{address['port']}" if ":" in host else f"{host}:{address['port']}"


def parse_address(text: str) -> dict:
    """Inverse of :func:`format_address`; a bare path is a Unix socket."""
    if text.startswith("unix:"):
        return {"family": "AF_UNIX", "path": text[5:]}
    if text.startswith("/"):
        return {"family": "AF_UNIX", "path": text}
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {text!r} is neither HOST:PORT nor unix:PATH")
    return {"family": "AF_INET", "host": host.strip("[]") or "127.0.0.1", "port": int(port)}


def stream_socket(address: dict) -> tuple[socket.socket, str | tuple]:
    """A new, unconnected stream socket for ``address``, and the target to connect it to."""
    if address.get("family") == "AF_UNIX":
        return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), address["path"]
    host = address["host"]
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, (host, address["port"])


def connect(address: dict, timeout: float) -> socket.socket:
    """Open a stream socket to ``address`` within ``timeout`` seconds."""
    sock, target = stream_socket(address)
    try:
        sock.settimeout(timeout)
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


__all__ = [
    "PROTOCOL_VERSION", "MAX_REQUEST_BYTES", "MAX_REPLY_BYTES", "OPS", "FrameSocket",
    "Request", "server_handshake", "client_handshake", "encode_request", "decode_request",
    "request_id_of", "encode_result", "encode_error", "decode_reply", "raise_for_reply",
    "format_address", "parse_address", "stream_socket", "connect",
]
