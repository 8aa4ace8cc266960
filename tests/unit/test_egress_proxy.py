"""The egress proxy with real sockets on loopback (no browser): SOCKS5 replies, and a
resolver whose answer changes between two lookups (DNS rebinding) cannot get through."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from browserd.egress import EgressProxy
from browserd.netpolicy import DestinationPolicy


class _Listener:
    """A TCP server on ``host`` that counts connections and answers b"hello"."""

    def __init__(self, host: str):
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._serve(conn)
            conn.close()

    def _serve(self, conn):
        conn.sendall(b"hello")

    def close(self):
        self.sock.close()


def _socks_connect(port: int, host: str, dest_port: int) -> tuple[int, bytes]:
    """A SOCKS5 CONNECT by name, as Chromium sends it; returns the reply code and data."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        name = host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", dest_port))
        reply = s.recv(10)
        data = s.recv(16) if reply[1] == 0 else b""
        return reply[1], data


@pytest.fixture
def servers():
    allowed, victim = _Listener("127.0.0.1"), _Listener("127.0.0.2")
    yield allowed, victim
    allowed.close()
    victim.close()


async def _loopback(host, port):
    """A resolver that sends every name to 127.0.0.1."""
    return [(socket.AF_INET, ("127.0.0.1", port))]


def _proxy(resolve):
    proxy = EgressProxy(DestinationPolicy(allow_networks=("127.0.0.1/32",)), resolve=resolve)
    listener = socket.create_server(("127.0.0.1", 0))
    proxy.add("b1", listener)
    proxy.start()
    return proxy, listener.getsockname()[1]


def test_rebinding_answer_never_reaches_the_refused_address(servers):
    allowed, victim = servers
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"], ["127.0.0.2"]])
    lookups = []

    async def rebinding_resolver(host, port):
        ips = next(answers)
        lookups.append(ips)
        return [(socket.AF_INET, (ip, port)) for ip in ips]

    proxy, port = _proxy(rebinding_resolver)
    try:
        # The first lookup says 127.0.0.1 (allowed): the proxy must connect to exactly that
        # answer, not look the name up again (the attacker's second answer is 127.0.0.2).
        code, data = _socks_connect(port, "rebind.test", allowed.port)
        assert (code, data) == (0, b"hello")
        code, _ = _socks_connect(port, "rebind.test", victim.port)
        assert code == 0x02  # "connection not allowed by ruleset"
        assert proxy.failure("b1", "rebind.test", victim.port)[0] == "ERR_ACCESS_DENIED"
    finally:
        proxy.stop()
    assert len(lookups) == 2, "one lookup per connection"
    assert victim.accepted == 0 and allowed.accepted == 1


def test_a_name_with_one_refused_address_is_refused_whole(servers):
    allowed, victim = servers

    async def mixed(host, port):
        return [(socket.AF_INET, ("127.0.0.2", port)), (socket.AF_INET, ("127.0.0.1", port))]

    proxy, port = _proxy(mixed)
    try:
        code, _ = _socks_connect(port, "mixed.test", allowed.port)
    finally:
        proxy.stop()
    assert code == 0x02 and allowed.accepted == 0 and victim.accepted == 0


def test_refused_connection_is_named_like_chromium(servers):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()

    proxy, port = _proxy(_loopback)
    try:
        code, _ = _socks_connect(port, "nothing.test", dead_port)
        assert proxy.failure("b1", "nothing.test", dead_port)[0] == "ERR_CONNECTION_REFUSED"
    finally:
        proxy.stop()
    assert code == 0x05


class _KeepAlive(_Listener):
    """A TCP server that answers b"ok" to every chunk it reads, on one connection."""

    def _serve(self, conn):
        while conn.recv(64):
            conn.sendall(b"ok")



def _tunnel(port: int, host: str, dest_port: int, first: bytes | None) -> bytes:
    """A SOCKS5 CONNECT, then ``first`` sent through the tunnel; the server's answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        name = host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", dest_port))
        assert s.recv(10)[1] == 0
        if first is None:
            return b""
        s.sendall(first)
        return s.recv(16)


def test_contacted_names_the_scheme_each_tunnel_showed():
    """The reset clears the storage of the origins a job's tunnels served: the https one
    for a TLS handshake, the http one for a request line, both when nothing showed which
    (so a plain-http host costs one origin cleared, not two)."""
    plain, tls, silent = _KeepAlive("127.0.0.1"), _KeepAlive("127.0.0.1"), _KeepAlive("127.0.0.1")

    proxy, port = _proxy(_loopback)
    try:
        assert _tunnel(port, "plain.test", plain.port, b"GET / HTTP/1.1\r\nHost: plain.test\r\n\r\n") == b"ok"
        assert _tunnel(port, "tls.test", tls.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03") == b"ok"
        _tunnel(port, "silent.test", silent.port, None)
        contacted = proxy.contacted("b1")
    finally:
        proxy.stop()
        for server in (plain, tls, silent):
            server.close()
    assert ("plain.test", plain.port, "http") in contacted
    assert ("tls.test", tls.port, "https") in contacted
    assert ("silent.test", silent.port, None) in contacted
    assert len(contacted) == 3


def test_first_bytes_classified():
    from browserd.socks5 import tls_or_plain

    assert tls_or_plain(b"\x16\x03\x01") == "https"
    assert tls_or_plain(b"POST /x HTTP/1.1\r\n") == "http"
    assert tls_or_plain(b"GET") is None  # no request line yet: unknown
    assert tls_or_plain(b"\x00\x01") is None and tls_or_plain(b"get / HTTP/1.1") is None



def test_a_tunnel_kept_alive_into_the_next_job_is_contacted_by_it():
    """A keep-alive tunnel opened in one job and carrying a request of the next (begin_job
    in between) is in the next job's contacted list, with the scheme its first bytes showed."""
    server = _KeepAlive("127.0.0.1")

    proxy, port = _proxy(_loopback)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"\x05\x01\x00")
            assert s.recv(2) == b"\x05\x00"
            s.sendall(b"\x05\x01\x00\x03\x07keep.me" + struct.pack("!H", server.port))
            assert s.recv(10)[1] == 0
            s.sendall(b"GET / HTTP/1.1\r\nHost: keep.me\r\n\r\n")
            assert s.recv(16) == b"ok"
            proxy.begin_job("b1")
            assert proxy.contacted("b1") == []
            s.sendall(b"GET /again HTTP/1.1\r\nHost: keep.me\r\n\r\n")
            assert s.recv(16) == b"ok"
            contacted = proxy.contacted("b1")
    finally:
        proxy.stop()
        server.close()
    assert contacted == [("keep.me", server.port, "http")]


def test_a_job_past_the_contacts_kept_is_not_complete(monkeypatch):
    """A job that asks for more distinct host:ports than are kept cannot have every origin
    it touched cleared by name: the proxy says so (the reset then replaces the browser),
    until the next job begins."""
    import browserd.egress as egress

    monkeypatch.setattr(egress, "CONTACTS_KEPT", 2)
    servers = [_KeepAlive("127.0.0.1") for _ in range(3)]

    proxy, port = _proxy(_loopback)
    try:
        for k, server in enumerate(servers[:2]):
            assert _tunnel(port, f"h{k}.test", server.port, b"GET / HTTP/1.1\r\n\r\n") == b"ok"
        assert proxy.contacts_complete("b1")
        assert _tunnel(port, "h2.test", servers[2].port, b"GET / HTTP/1.1\r\n\r\n") == b"ok"
        assert not proxy.contacts_complete("b1") and len(proxy.contacted("b1")) == 2
        proxy.begin_job("b1")
        assert proxy.contacts_complete("b1")
    finally:
        proxy.stop()
        for server in servers:
            server.close()
