"""The server side of SOCKS5 (RFC 1928) that the egress proxy needs: the greeting without
authentication, the ``CONNECT`` request, the reply codes, and a byte pipe for tunnels."""

from __future__ import annotations

import socket
import struct

#: Reply codes (RFC 1928 section 6).
REP_OK = 0x00
REP_FAILURE = 0x01
REP_NOT_ALLOWED = 0x02
REP_NETWORK_UNREACHABLE = 0x03
REP_HOST_UNREACHABLE = 0x04
REP_REFUSED = 0x05
REP_COMMAND_NOT_SUPPORTED = 0x07
REP_ADDRESS_NOT_SUPPORTED = 0x08

CHUNK = 1 << 16  # bytes read at once by a tunnel


class SocksError(Exception):
    """A SOCKS5 client asked for what this server does not do (it was answered)."""


def reply(code: int) -> bytes:
    """A SOCKS5 reply with code ``code`` and an all-zero IPv4 bound address (RFC 1928 s6)."""
    return struct.pack("!BBBB4sH", 5, code, 0, 1, b"\0\0\0\0", 0)


async def read_connect(reader, writer) -> tuple[str, int]:
    """Read a client's greeting (no authentication offered: 0xFF) and its request (RFC 1928
    sections 3 and 4); returns the ``CONNECT`` destination ``(host, port)``, a name as
    given or an address as text. Answers and raises :class:`SocksError` for another
    method, address type or command; raises ``asyncio.IncompleteReadError`` on EOF."""
    version, count = await reader.readexactly(2)
    methods = await reader.readexactly(count)
    if version != 5 or 0 not in methods:
        writer.write(b"\x05\xff")
        raise SocksError("no acceptable method")
    writer.write(b"\x05\x00")
    version, command, _reserved, atyp = await reader.readexactly(4)
    if atyp == 1:
        host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
    elif atyp == 4:
        host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
    elif atyp == 3:
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("idna")
    else:
        writer.write(reply(REP_ADDRESS_NOT_SUPPORTED))
        raise SocksError("address type")
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    if command != 1:  # only CONNECT: no BIND, no UDP ASSOCIATE
        writer.write(reply(REP_COMMAND_NOT_SUPPORTED))
        raise SocksError("command")
    return host, port


def tls_or_plain(first: bytes) -> str | None:
    """The scheme a tunnel's first client bytes show: ``"https"`` for a TLS handshake
    record (content type 22, RFC 8446 section 5.1), ``"http"`` for an HTTP/1 request line
    (an upper-case method token, RFC 9112 section 3), else None (unknown)."""
    if first[:1] == b"\x16":
        return "https"
    method = first.split(b" ", 1)[0]
    if 0 < len(method) <= 16 and method.isalpha() and method.isupper() and b" " in first:
        return "http"
    return None


async def pipe(reader, writer, on_data=None) -> None:
    """Copy ``reader`` to ``writer`` until EOF or a connection error, then half-close.
    ``on_data(data)``: called with each chunk read, before it is written."""
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if on_data is not None:
                on_data(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass
