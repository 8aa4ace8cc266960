"""The browserd wire protocol without I/O: frames, the authkey handshake and the messages.

One implementation of protocol version 1 that the blocking transport
(:mod:`browserd_client.protocol`, used by :class:`~browserd_client.Client` and the daemon)
and the asyncio client (:mod:`browserd_client.aio`) share; they differ only in how they
read and write bytes. Nothing here touches a socket, a clock or an event loop.

**Frames** are those of :mod:`multiprocessing.connection`: a 4-byte big-endian signed
length (or -1 followed by an 8-byte unsigned length, for frames over 2 GiB - 1) and that
many bytes, so the stdlib's ``multiprocessing.connection.Client(address, authkey=...)`` can
talk to the daemon too.

**The handshake** is the stdlib's HMAC challenge/response, in both directions (each side
proves it knows the authkey): the daemon challenges first, the client answers, then the
client challenges and the daemon answers. Python <= 3.11 challenges with 20 random bytes
and expects a raw HMAC-MD5; 3.12+ with ``{sha256}`` + 40 bytes and expects ``{sha256}`` +
HMAC-SHA256 (and still accepts a raw MD5 answer). We answer either, and challenge the 3.12
way, which every version accepts.

**Messages** are UTF-8 JSON objects, never pickles::

    request  {"v": 1, "id": 7, "op": "fetch", "args": {"url": "https://example.org/"}}
    reply    {"v": 1, "id": 7, "ok": true, "result": {...}}
    error    {"v": 1, "id": 7, "ok": false,
              "error": {"code": "busy", "message": "...", "retryable": true}}

Several requests may be sent, one after the other, on one connection; each reply echoes
its request's ``id``.

**Steps.** A frame read or written, and a whole handshake, is a generator (the pattern of
websockets' sans-I/O parsers) that yields :class:`Read` (read exactly ``size`` bytes and
send them in) and :class:`Write` (write ``data`` in full) and returns its result. A
driver, the only code that does I/O, performs each step until the generator returns:
:meth:`browserd_client.protocol.FrameSocket.run` on a blocking socket,
:func:`browserd_client.aio.run` on asyncio streams.

Errors: a malformed frame raises :class:`~browserd_client.errors.ProtocolError` (or
:class:`~browserd_client.errors.FrameTooLarge` over the reader's limit); a failed handshake
:class:`~browserd_client.errors.AuthenticationFailed`. End of stream is the driver's to
report (``EOFError``).
"""

from __future__ import annotations

import hmac
import json
import os
import struct
from dataclasses import dataclass
from typing import Callable, Generator, TypeVar, Union

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


@dataclass(frozen=True)
class Read:
    """Step: read exactly ``size`` bytes (0 or more) and send them into the generator."""

    size: int


@dataclass(frozen=True)
class Write:
    """Step: write all of ``data``; the generator is sent ``None``."""

    data: bytes


_T = TypeVar("_T")
#: A generator of wire steps that returns a ``T``.
Steps = Generator[Union[Read, Write], Union[bytes, None], _T]


# --- frames ----------------------------------------------------------------------------

_HEADER = struct.Struct("!i")
_LONG_HEADER = struct.Struct("!Q")
#: A frame shorter than this is written in one piece (one segment with TCP_NODELAY); a
#: longer one as its header, then its body, without copying the body.
_COALESCE_BYTES = 16384


def header(size: int) -> bytes:
    """The length header of a frame of ``size`` bytes (4 bytes, or 12 over 2 GiB - 1)."""
    if size > 0x7FFFFFFF:
        return _HEADER.pack(-1) + _LONG_HEADER.pack(size)
    return _HEADER.pack(size)


def write_frame(data: bytes) -> Steps[None]:
    """Steps that write ``data`` (bytes-like) as one frame."""
    if len(data) < _COALESCE_BYTES:
        yield Write(header(len(data)) + bytes(data))
    else:
        yield Write(header(len(data)))
        yield Write(data)


def read_frame(maxlength: int | None) -> Steps[bytes]:
    """Steps that read one frame and return its body.

    Raises :class:`ProtocolError` for a negative length and :class:`FrameTooLarge` when the
    frame announces more than ``maxlength`` bytes (None: no limit); the body is then left
    unread, so the connection is out of step and must be closed."""
    (size,) = _HEADER.unpack((yield Read(_HEADER.size)))
    if size == -1:
        (size,) = _LONG_HEADER.unpack((yield Read(_LONG_HEADER.size)))
    if size < 0:
        raise ProtocolError(f"negative frame length {size}")
    if maxlength is not None and size > maxlength:
        raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {maxlength} bytes")
    return (yield Read(size))


# --- messages --------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """A parsed request: ``id`` (echoed by its reply), ``op`` (one of :data:`OPS` or
    another name the daemon then refuses) and its ``args`` object."""

    id: int
    op: str
    args: dict


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _loads(data: bytes, what: str, error: type[BrowserdError]) -> dict:
    """A frame's JSON object; ``error`` (a BrowserdError class) says why it is not one."""
    try:
        msg = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{what} is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    return msg


def encode_request(req_id: int, op: str, args: dict | None = None) -> bytes:
    """The body of a request frame (compact UTF-8 JSON)."""
    return _dumps({"v": PROTOCOL_VERSION, "id": req_id, "op": op, "args": args or {}})


def decode_request(data: bytes) -> Request:
    """Parse one request frame; raise a :class:`BadRequest` subclass saying what is wrong
    (:class:`UnsupportedVersion` for another protocol version)."""
    msg = _loads(data, "request", BadRequest)
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
    """Best-effort id of a request that failed to parse, so the error can echo it (0)."""
    try:
        req_id = json.loads(data).get("id", 0)
        return req_id if isinstance(req_id, int) else 0
    except Exception:
        return 0


def encode_result(req_id: int, result) -> bytes:
    """The body of a success reply carrying ``result`` (any JSON value)."""
    return _dumps({"v": PROTOCOL_VERSION, "id": req_id, "ok": True, "result": result})


def encode_error(req_id: int, error: BrowserdError) -> bytes:
    """The body of an error reply carrying ``error``'s code, message, retryability, details."""
    return _dumps({"v": PROTOCOL_VERSION, "id": req_id, "ok": False, "error": error.to_wire()})


def decode_reply(data: bytes, req_id: int | None = None) -> dict:
    """Parse one reply frame into its message dict (``ok``, ``result`` or ``error``).

    With ``req_id``, the reply must echo it. Raises :class:`ProtocolError` for anything
    else (not JSON, not a reply, another protocol version, another request's reply): the
    connection is then out of step. Does not raise the error a reply carries: see
    :func:`raise_for_reply`."""
    msg = _loads(data, "reply", ProtocolError)
    if not isinstance(msg, dict) or "ok" not in msg:
        raise ProtocolError("reply is not a browserd reply object")
    if msg.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"daemon speaks protocol version {msg.get('v')!r}, not {PROTOCOL_VERSION}")
    if req_id is not None and msg.get("id") != req_id:
        raise ProtocolError(f"reply id {msg.get('id')!r} does not match request {req_id}")
    return msg


def raise_for_reply(msg: dict):
    """The result of a reply message, or raise the :class:`BrowserdError` subclass its
    error code names (:class:`ProtocolError` when the error object is missing)."""
    if msg.get("ok"):
        return msg.get("result")
    error = msg.get("error")
    if not isinstance(error, dict):
        raise ProtocolError("error reply without an error object")
    raise error_from_wire(error)


# --- the handshake ---------------------------------------------------------------------

CHALLENGE, WELCOME, FAILURE = b"#CHALLENGE#", b"#WELCOME#", b"#FAILURE#"
_LEGACY_LENGTHS = (20, 16)     # an MD5-era challenge, an MD5 digest
_DIGESTS = (b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384")
_DIGEST_NAME_MAX = max(map(len, _DIGESTS))


def _digest_of(message: bytes) -> str:
    """The HMAC digest a challenge or an answer is made with: ``md5`` for the legacy
    format, else the ``name`` of a ``{name}...`` prefix (the HMAC covers the prefix too)."""
    if len(message) in _LEGACY_LENGTHS:
        return "md5"
    end = message.find(b"}", 1, 2 + _DIGEST_NAME_MAX)
    if message.startswith(b"{") and end > 0 and message[1:end] in _DIGESTS:
        return message[1:end].decode("ascii")
    raise AuthenticationFailed("authentication failed: unsupported challenge or digest")


def answer(authkey: bytes, message: bytes) -> bytes:
    """The answer to the challenge ``message`` (what follows ``#CHALLENGE#``): a raw
    HMAC-MD5 for a legacy challenge, else ``{name}`` + the HMAC with that digest. Raises
    :class:`AuthenticationFailed` for a challenge in neither format."""
    name = _digest_of(message)
    mac = hmac.new(authkey, message, name).digest()
    return mac if len(message) in _LEGACY_LENGTHS else b"{%s}%s" % (name.encode("ascii"), mac)


def verify(authkey: bytes, message: bytes, response: bytes) -> bool:
    """Whether ``response`` proves that the peer knows ``authkey``, for our challenge
    ``message`` (constant-time comparison)."""
    try:
        name = _digest_of(response)
    except AuthenticationFailed:
        return False
    mac = response if len(response) in _LEGACY_LENGTHS else response[len(name) + 2:]
    return hmac.compare_digest(hmac.new(authkey, message, name).digest(), mac)


def new_challenge() -> bytes:
    """A fresh challenge message: ``{sha256}`` and 40 random bytes (as Python 3.12+)."""
    return b"{sha256}" + os.urandom(40)


def _challenge(authkey: bytes) -> Steps[bool]:
    """Challenge the peer; tell it WELCOME or FAILURE; return whether it answered right."""
    message = new_challenge()
    yield from write_frame(CHALLENGE + message)
    ok = verify(authkey, message, (yield from read_frame(HANDSHAKE_FRAME_BYTES)))
    yield from write_frame(WELCOME if ok else FAILURE)
    return ok


def _answer(authkey: bytes, challenge: bytes) -> Steps[bool]:
    """Answer the peer's ``challenge`` frame; return whether it welcomed the answer."""
    yield from write_frame(answer(authkey, challenge[len(CHALLENGE):]))
    return (yield from read_frame(HANDSHAKE_FRAME_BYTES)) == WELCOME


def client_handshake(authkey: bytes) -> Steps[None]:
    """The client's side: answer the daemon's challenge, then challenge it.

    A daemon at its connection limit sends one error reply (``busy``) instead of a
    challenge: that error is raised (:class:`~browserd_client.errors.Busy`, retryable).
    Raises :class:`AuthenticationFailed` when either side's answer is wrong (the daemon's
    key differs, or it is not a browserd daemon) and :class:`ProtocolError` for a first
    frame that is neither a challenge nor an error reply."""
    first = yield from read_frame(HANDSHAKE_FRAME_BYTES * 16)
    if not first.startswith(CHALLENGE):
        raise_for_reply(decode_reply(first))
        raise ProtocolError("the daemon sent neither a challenge nor an error")
    if not (yield from _answer(authkey, first)):
        raise AuthenticationFailed("authentication failed: digest sent was rejected")
    if not (yield from _challenge(authkey)):
        raise AuthenticationFailed("authentication failed: digest received was wrong")


def server_handshake(authkey: bytes, on_answered: Callable[[], object] | None = None) -> Steps[None]:
    """The daemon's side: challenge the client, then answer its challenge.

    ``on_answered()`` is called once the client answered our challenge correctly (before
    its own challenge is read). Every failed or malformed step raises
    :class:`AuthenticationFailed` (the stdlib would ``assert`` on a challenge without its
    prefix); a frame over the handshake's 256-byte limit :class:`FrameTooLarge`."""
    if not (yield from _challenge(authkey)):
        raise AuthenticationFailed("digest received was wrong")
    if on_answered is not None:
        on_answered()
    challenge = yield from read_frame(HANDSHAKE_FRAME_BYTES)
    if not challenge.startswith(CHALLENGE) or len(challenge) == len(CHALLENGE):
        raise AuthenticationFailed("the peer's challenge is malformed")
    if not (yield from _answer(authkey, challenge)):
        raise AuthenticationFailed("digest sent was rejected")


__all__ = [
    "PROTOCOL_VERSION", "MAX_REQUEST_BYTES", "MAX_REPLY_BYTES", "HANDSHAKE_FRAME_BYTES", "OPS",
    "Read", "Write", "Steps", "header", "write_frame", "read_frame",
    "Request", "encode_request", "decode_request", "request_id_of", "encode_result", "encode_error",
    "decode_reply", "raise_for_reply",
    "CHALLENGE", "WELCOME", "FAILURE", "answer", "verify", "new_challenge",
    "client_handshake", "server_handshake",
]
