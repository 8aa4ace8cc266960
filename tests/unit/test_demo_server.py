"""The daemon's demo page server binds after the daemon's fork: it must not touch the
resolver there (a resolver lock held by another thread of the parent at the fork stays
held in the child, and ``HTTPServer``'s ``getfqdn`` then blocked the start forever)."""

import socket

from browserd.demo import DemoServer


def test_the_demo_server_binds_without_a_name_lookup(monkeypatch):
    def lookup(*args, **kwargs):
        raise AssertionError("the resolver was asked (socket.getfqdn)")

    monkeypatch.setattr(socket, "getfqdn", lookup)
    server = DemoServer()
    try:
        assert server.port > 0 and server.url.startswith("http://127.0.0.1:")
    finally:
        server.httpd.server_close()
