"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import time


def notify(state: str) -> bool:
    """Send e.g. ``READY=1`` to systemd; False (and nothing done) when not under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC`` (sd_watchdog_enabled(3));
    None when systemd watches no process of ours (unset, or ``$WATCHDOG_PID`` is another)."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2e6


class WatchdogFeed:
    """``WATCHDOG=1`` to systemd (``WatchdogSec=``) at half its interval, only while the
    Arbiter's loop runs and ``healthy()`` says so (the accept thread alive and a browser
    up). A daemon that stops being healthy is restarted by systemd once the interval
    passes. Called from the Arbiter's thread only."""

    def __init__(self, healthy):
        self.healthy = healthy
        self.every: float | None = None  # seconds between pings; None: off
        self._next = 0.0

    def arm(self) -> None:
        """Read ``$WATCHDOG_USEC``/``$WATCHDOG_PID`` in the process that serves (after
        daemonizing: the pid systemd watches must be ours)."""
        self.every = watchdog_interval()

    def seconds_to_next(self, clock=time.monotonic) -> float | None:
        """Seconds until the next ping is due (0 when overdue); None when off."""
        return None if not self.every else max(0.0, self._next - clock())

    def tick(self) -> None:
        """Ping when due and healthy; when not healthy, look again within a second."""
        if not self.every or time.monotonic() < self._next:
            return
        if self.healthy():
            notify("WATCHDOG=1")
            self._next = time.monotonic() + self.every
        else:
            self._next = time.monotonic() + min(1.0, self.every)
