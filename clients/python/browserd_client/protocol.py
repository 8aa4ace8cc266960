"""The browserd wire protocol over blocking sockets: the module the daemon and the
blocking :class:`~browserd_client.Client` use.

:class:`FrameSocket` reads and writes the frames of :mod:`browserd_client.wire` (the
sans-I/O protocol: frames, the authkey handshake, the JSON messages) on a stream socket
(TCP on loopback, or AF_UNIX) under deadlines, so neither side can be held forever by a
silent or trickling peer; :func:`client_handshake` and :func:`server_handshake` run the
handshake on one. The message functions and limits of :mod:`~browserd_client.wire` are
importable from here too (``protocol.encode_request``, ``protocol.PROTOCOL_VERSION``, ...),
as they always were.

A FrameSocket is used by one thread at a time; none of it survives ``fork()`` (see
:meth:`FrameSocket.close`).
"""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager
from multiprocessing import AuthenticationError

from . import wire
from .errors import AuthenticationFailed, ProtocolError
from .wire import (  # re-exported (see __all__): the names the daemon imports from here
    HANDSHAKE_FRAME_BYTES,
    MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    OPS,
    PROTOCOL_VERSION,
    Request,
    decode_reply,
    decode_request,
    encode_error,
    encode_request,
    encode_result,
    raise_for_reply,
    request_id_of,
)


class FrameSocket:
    """Frames over a blocking socket, with an optional deadline for every call.

    ``send_bytes``/``recv_bytes`` have the stdlib ``Connection`` signatures. Errors:
    ``TimeoutError`` (or ``socket.timeout``) once the deadline passed, ``EOFError`` when the
    peer closed, ``OSError`` from the socket, and the frame errors of
    :func:`~browserd_client.wire.read_frame`.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline: float | None = None   #: time.monotonic() value; None: none

    def fileno(self) -> int:
        """The socket's descriptor (for ``select``)."""
        return self.sock.fileno()

    @contextmanager
    def deadline_in(self, seconds: float | None):
        """Bound every send and receive inside the block by one total deadline, ``seconds``
        from now (None: no deadline); the previous deadline comes back after the block."""
        saved = self.deadline
        self.deadline = None if seconds is None else time.monotonic() + seconds
        try:
            yield self
        finally:
            self.deadline = saved

    def run(self, steps: wire.Steps):
        """Drive the wire ``steps`` (a frame, a handshake) on this socket; their result."""
        value = None
        while True:
            try:
                step = steps.send(value)
            except StopIteration as done:
                return done.value
            if isinstance(step, wire.Read):
                value = self._recv_exact(step.size)
            else:
                self._send_all(memoryview(step.data))
                value = None

    def send_bytes(self, data: bytes) -> None:
        """Send ``data`` (bytes-like) as one frame."""
        self.run(wire.write_frame(data))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one frame's bytes; :class:`~browserd_client.errors.FrameTooLarge` when
        it announces more than ``maxlength`` bytes (None: no limit)."""
        return self.run(wire.read_frame(maxlength))

    def _arm(self) -> None:
        if self.deadline is None:
            self.sock.settimeout(None)
            return
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining)

    def _send_all(self, view: memoryview) -> None:
        while view:
            self._arm()
            sent = self.sock.send(view)
            view = view[sent:]

    def _recv_exact(self, size: int) -> bytes:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            self._arm()
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise EOFError("peer closed the connection" if got == 0 else "peer closed mid-frame")
            got += n
        return bytes(buf)

    def close(self) -> None:
        """Close this process's descriptor; never ``shutdown()``, so closing a socket
        inherited across ``fork()`` leaves the other process's connection alone."""
        try:
            self.sock.close()
        except OSError:
            pass


# --- the handshake on a FrameSocket --------------------------------------------------------

def client_handshake(conn: FrameSocket, authkey: bytes) -> None:
    """The client's side of the handshake on ``conn``, under its deadline (see
    :func:`browserd_client.wire.client_handshake`: raises
    :class:`~browserd_client.errors.AuthenticationFailed`, or the ``busy`` error of a
    daemon at its connection limit)."""
    conn.run(wire.client_handshake(authkey))


def server_handshake(conn: FrameSocket, authkey: bytes, on_answered=None) -> None:
    """The daemon's side of the handshake on ``conn``, under its deadline (see
    :func:`browserd_client.wire.server_handshake`). A wrong or malformed answer or
    challenge raises :class:`multiprocessing.AuthenticationError`, as the stdlib
    ``Listener`` does; frame and transport errors pass through."""
    try:
        conn.run(wire.server_handshake(authkey, on_answered))
    except AuthenticationFailed as exc:
        raise AuthenticationError(str(exc)) from None


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
    "PROTOCOL_VERSION", "MAX_REQUEST_BYTES", "MAX_REPLY_BYTES", "HANDSHAKE_FRAME_BYTES", "OPS",
    "FrameSocket", "Request", "server_handshake", "client_handshake", "encode_request",
    "decode_request", "request_id_of", "encode_result", "encode_error", "decode_reply",
    "raise_for_reply", "ProtocolError", "format_address", "parse_address", "stream_socket", "connect",
]
