"""The daemon's side of a browser's private network namespace.

chromedriver's HTTP port and Chromium's DevTools port listen on loopback with no
authentication (STYLE trap 13): any local user, and any page on a loopback origin, could
drive the browser. So every local browser runs in a network namespace of its own
(:mod:`browserd._netns_launcher`), where those ports exist for nobody else. The daemon
stays outside; it reaches into the namespace with sockets that the launcher creates there
and passes over a ``SOCK_SEQPACKET`` control socket (a socket belongs to the namespace it
was created in, wherever it is used later):

- :meth:`Namespace.connect` — a TCP connection to a port of the namespace (chromedriver,
  DevTools);
- :meth:`Namespace.listener` — a listening socket inside it, on which the daemon's egress
  proxy (:mod:`browserd.egress`) accepts the browser's only way out;
- :class:`NamespacePoolManager` — urllib3's pool for Selenium's commands, whose
  connections are made that way.

Costs (2 cores, measured): one socket request is a round trip of ~40 µs; the launcher
is a resident Python process of ~9 MB per browser.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_netns_launcher.py")


class NamespaceError(OSError):
    """The namespace's launcher did not answer a socket request (it is gone)."""


def launcher_python() -> str:
    """A Python interpreter this process may execute, for the stdlib-only launcher: ours,
    else the system's (a daemon running as a service user may have been started through an
    interpreter under a directory it cannot enter, e.g. a venv made from ~root/.pyenv)."""
    for candidate in (sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3",
                      shutil.which("python3") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def launcher_argv(ctl_fd: int, program: list[str]) -> list[str]:
    """The command that runs ``program`` in a private network namespace."""
    return [launcher_python(), "-I", "-S", LAUNCHER, str(ctl_fd), *program]


class Namespace:
    """A handle on one browser's namespace: its launcher's control socket.

    Thread-safe: requests are serialized by a lock (each is one round trip).
    """

    def __init__(self, ctl: socket.socket):
        self.ctl = ctl
        self._lock = threading.Lock()

    @classmethod
    def pair(cls) -> tuple["Namespace", socket.socket]:
        """A new control channel: our handle, and the end to pass to the launcher."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.set_inheritable(False)
        theirs.set_inheritable(True)
        return cls(ours), theirs

    def fileno(self) -> int:
        """Our end of the namespace's control socket (kept open across the daemon's fork)."""
        return self.ctl.fileno()

    def _request(self, kind: bytes, timeout: float = 5.0) -> socket.socket:
        with self._lock:
            try:
                self.ctl.settimeout(timeout)
                self.ctl.send(kind)
                msg, fds, _flags, _addr = socket.recv_fds(self.ctl, 512, 1)
            except OSError as exc:
                raise NamespaceError(f"browser namespace unavailable: {exc}") from None
        if not fds:
            reason = msg.decode("utf-8", "replace") if msg else "launcher exited"
            raise NamespaceError(f"browser namespace unavailable: {reason}")
        return socket.socket(fileno=fds[0])

    def socket(self, family: int = socket.AF_INET) -> socket.socket:
        """A new, unconnected TCP socket of the namespace."""
        return self._request(b"tcp6" if family == socket.AF_INET6 else b"tcp4")

    def connect(self, port: int, timeout: float | None = None, host: str = "127.0.0.1") -> socket.socket:
        """A TCP connection to ``host:port`` inside the namespace (``timeout`` in seconds)."""
        sock = self.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        return sock

    def listener(self) -> socket.socket:
        """A socket listening on 127.0.0.1 inside the namespace, port picked by the kernel."""
        return self._request(b"listen")

    def close(self) -> None:
        """Close our end: the launcher then ends the namespace's processes. Waits for a
        request in flight (each is short), so no thread reads a reused descriptor."""
        with self._lock:
            self.ctl.close()


class _NamespaceConnection(HTTPConnection):
    namespace: Namespace  # set on the subclass made per namespace

    def _new_conn(self) -> socket.socket:
        try:
            return self.namespace.connect(self.port, self.timeout, self.host)
        except OSError as exc:
            from urllib3.exceptions import NewConnectionError

            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class NamespacePoolManager(urllib3.PoolManager):
    """urllib3's pool manager whose HTTP connections are made inside ``namespace``."""

    def __init__(self, namespace: Namespace, **kwargs):
        super().__init__(**kwargs)
        conn_cls = type("NamespaceConnection", (_NamespaceConnection,), {"namespace": namespace})
        pool_cls = type("NamespaceConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": conn_cls})
        self.pool_classes_by_scheme = {"http": pool_cls}
        self.key_fn_by_scheme = {"http": self.key_fn_by_scheme["http"]}
