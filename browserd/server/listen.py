"""The listening socket: bound from the configuration (TCP on loopback, or a Unix
socket made private to the daemon's user or group), with one-line errors."""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat

from ..config import is_loopback

logger = logging.getLogger(__name__)


def secure_socket(path: str, gid: int | None) -> None:
    """The Unix socket we just bound (under umask 077): ours, and 0600, or 0660 to ``gid``
    (connecting needs write permission)."""
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(f"unix:{path} is not the socket we bound")
    if gid is not None:
        os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, 0o600 if gid is None else 0o660)


class BindError(OSError):
    """The configured address cannot be listened on (one-line message)."""


def bind(config) -> tuple[socket.socket, dict]:
    """Create the listening socket from the config; return it and its published address."""
    if config.socket:
        path = config.socket
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # stale: only called while we hold the pidfile lock
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(config.backlog)
        except OSError as exc:
            sock.close()
            raise BindError(f"cannot listen on unix:{path}: {exc.strerror}") from None
        address = {"family": "AF_UNIX", "path": path}
    else:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        try:
            sock = socket.create_server((config.host, config.port), family=family, backlog=config.backlog)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BindError(f"port {config.port} on {config.host} is already in use") from None
            raise BindError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
        host, port = sock.getsockname()[:2]
        address = {"family": "AF_INET", "host": host, "port": port}
        if config.insecure_listen_any and not is_loopback(host):
            logger.warning("listening on %s port %d beyond loopback because insecure_listen_any is set: "
                           "after the handshake, requests and pages cross the network unencrypted", host, port)
    sock.set_inheritable(False)
    return sock, address
