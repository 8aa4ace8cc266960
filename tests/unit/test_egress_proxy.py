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
            conn.sendall(b"hello")
            conn.close()

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

    async def local(host, port):
        return [(socket.AF_INET, ("127.0.0.1", port))]

    proxy, port = _proxy(local)
    try:
        code, _ = _socks_connect(port, "nothing.test", dead_port)
        assert proxy.failure("b1", "nothing.test", dead_port)[0] == "ERR_CONNECTION_REFUSED"
    finally:
        proxy.stop()
    assert code == 0x05
