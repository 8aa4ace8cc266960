"""Two small forward proxies on 127.0.0.1 that record what they forwarded, for the tests
of per-job upstream proxies: a SOCKS5 proxy with username/password authentication
(RFC 1928, RFC 1929) and an HTTP proxy (CONNECT) with Basic authentication.

Each records ``"host:port"`` for every tunnel it opened (``.tunnels``) and every failed
authentication (``.auth_failures``). Threads only; every socket has a timeout.
"""

from __future__ import annotations

import base64
import socket
import struct
import threading


def _splice(a: socket.socket, b: socket.socket) -> None:
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join(30)
    a.close()
    b.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class _Proxy:
    def __init__(self, username: str, password: str):
        self.username, self.password = username, password
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.tunnels: list[str] = []
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, password: str | None = None) -> str:
        return f"{self.scheme}://{self.username}:{password or self.password}@127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(30)
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn):
        try:
            self._serve(conn)
        except (OSError, ConnectionError, ValueError):
            conn.close()

    def _open(self, host: str, port: int) -> socket.socket:
        upstream = socket.create_connection((host, port), timeout=30)
        with self._lock:
            self.tunnels.append(f"{host}:{port}")
        return upstream

    def _failed_auth(self):
        with self._lock:
            self.auth_failures += 1


class Socks5Proxy(_Proxy):
    scheme = "socks5"

    def _serve(self, conn):
        version, count = _recv_exact(conn, 2)
        methods = _recv_exact(conn, count)
        if version != 5 or 2 not in methods:
            conn.sendall(b"\x05\xff")
            return conn.close()
        conn.sendall(b"\x05\x02")
        _ver, ulen = _recv_exact(conn, 2)
        user = _recv_exact(conn, ulen).decode()
        (plen,) = _recv_exact(conn, 1)
        password = _recv_exact(conn, plen).decode()
        if (user, password) != (self.username, self.password):
            self._failed_auth()
            conn.sendall(b"\x01\x01")
            return conn.close()
        conn.sendall(b"\x01\x00")
        _ver, _cmd, _rsv, atyp = _recv_exact(conn, 4)
        if atyp == 3:
            host = _recv_exact(conn, _recv_exact(conn, 1)[0]).decode()
        elif atyp == 1:
            host = socket.inet_ntoa(_recv_exact(conn, 4))
        else:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(conn, 16))
        (port,) = struct.unpack("!H", _recv_exact(conn, 2))
        try:
            upstream = self._open(host, port)
        except OSError:
            conn.sendall(b"\x05\x05\x00\x01" + b"\0" * 6)
            return conn.close()
        conn.sendall(b"\x05\x00\x00\x01" + b"\0" * 6)
        _splice(conn, upstream)


class HttpConnectProxy(_Proxy):
    scheme = "http"

    def _serve(self, conn):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk or len(head) > 16384:
                return conn.close()
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if headers.get("proxy-authorization") != expected:
            self._failed_auth()
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                         b"Content-Length: 0\r\n\r\n")
            return conn.close()
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return conn.close()
        host, port = target.rsplit(":", 1)
        try:
            upstream = self._open(host.strip("[]"), int(port))
        except OSError:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return conn.close()
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _splice(conn, upstream)
