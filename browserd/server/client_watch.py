"""Notices a client that closes its connection while its job runs, and aborts the job."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading

logger = logging.getLogger(__name__)


class ClientWatch:
    """Notices a client that closes its connection while its job runs (epoll RDHUP),
    and aborts that job so no work continues for a client that left."""

    def __init__(self, stats):
        self.stats = stats
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        self._jobs: dict[int, tuple] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="client-watch", daemon=True)

    def start(self):
        """Start the watcher thread."""
        self._thread.start()

    def watch(self, sock: socket.socket, job) -> None:
        """Abort ``job`` (``job.abort("client_gone")``) if ``sock``'s peer closes before :meth:`unwatch`."""
        with self._lock:
            self._jobs[sock.fileno()] = (sock, job)
            self._epoll.register(sock.fileno(), select.EPOLLRDHUP | select.EPOLLIN)

    def unwatch(self, sock: socket.socket) -> None:
        """Must be called before the socket is closed (no stale fd numbers here)."""
        with self._lock:
            if self._jobs.pop(sock.fileno(), None) is not None:
                self._epoll.unregister(sock.fileno())

    def stop(self):
        """Stop the thread (waits up to 5 s) and close the epoll and the wake-up pipe."""
        self._stopped = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self):
        while not self._stopped:
            for fd, events in self._epoll.poll():
                if fd == self._wake_r:
                    continue
                with self._lock:
                    entry = self._jobs.get(fd)
                    if entry is None:
                        continue
                    sock, job = entry
                    gone = bool(events & (select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR))
                    if not gone:
                        try:
                            gone = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
                        except BlockingIOError:
                            gone = False
                        except OSError:
                            gone = True
                    # Gone or pipelining: either way stop watching this fd.
                    self._jobs.pop(fd, None)
                    self._epoll.unregister(fd)
                if gone and job.abort("client_gone"):
                    self.stats.count("client_gone")
                    logger.warning("job=%s client went away mid-job; cancelled", job.id)
