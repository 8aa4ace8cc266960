"""What a client is made with, and where it finds the daemon: the base of
:class:`~browserd_client.Client` and :class:`~browserd_client.AsyncClient`."""

from __future__ import annotations

from . import protocol
from ._fork import ProcessBound
from .retry import Backoff
from .state import default_state_dir, read_authkey, read_state


class Settings(ProcessBound):
    """A client's settings (read-only after ``__init__``).

    ``address``: ``"HOST:PORT"``, ``"unix:PATH"`` or an address dict, and ``authkey``
    (bytes, or str as UTF-8): the daemon's; when either is None it is read from the state
    directory ``state_dir`` (default: ``$BROWSERD_STATE_DIR``, else browserd's default) at
    every connect, so a restarted daemon is found at its new address. ``timeout``: seconds
    a job may take (the reply is awaited 10 s longer); ``connect_timeout``: seconds for the
    connect and the handshake together; ``retry``: the :class:`~browserd_client.Backoff`
    policy; ``max_reply_bytes``: the largest reply frame accepted (else
    :class:`~browserd_client.FrameTooLarge`). Raises ``ValueError`` for an address string
    that is neither form.
    """

    def __init__(self, address: str | dict | None, authkey: bytes | str | None, *, state_dir: str | None,
                 timeout: float, connect_timeout: float, retry: Backoff | None, max_reply_bytes: int):
        self.state_dir = state_dir or default_state_dir()
        self._address = protocol.parse_address(address) if isinstance(address, str) else address
        self._authkey = authkey.encode() if isinstance(authkey, str) else authkey
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry = retry or Backoff()
        self.max_reply_bytes = max_reply_bytes

    def settings(self) -> dict:
        """The arguments that make another client with these settings (and a connection
        of its own): ``type(c)(**c.settings())``."""
        return {"address": self._address, "authkey": self._authkey, "state_dir": self.state_dir,
                "timeout": self.timeout, "connect_timeout": self.connect_timeout, "retry": self.retry,
                "max_reply_bytes": self.max_reply_bytes}

    def target(self) -> tuple[dict, bytes]:
        """The daemon's address dict and authkey: as given, else read again from its state
        directory. A missing state file raises :class:`~browserd_client.errors.NotRunning`
        (which the retry policy waits out: a start-up or a restart, see
        ``Backoff.wait_for_daemon``), an unreadable one
        :class:`~browserd_client.errors.PermissionDenied`."""
        address, authkey = self._address, self._authkey
        if address is None or authkey is None:
            state = read_state(self.state_dir)
            address = address or state["address"]
            authkey = authkey or read_authkey(self.state_dir)
        return address, authkey


__all__ = ["Settings"]
