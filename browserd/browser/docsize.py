"""Watching the size of a job's main document while it loads, from another thread.

A document past the reply limit must be refused without reading it all: a 70 MiB
text/plain page keeps chromedriver's ``get`` blocked past the job's deadline (its
renderer lays the text out for minutes), so the job's own thread, and the performance
log only it can read, learn of the size too late. A :class:`SizeWatch` has its own
browser-level DevTools connection (like :mod:`.interrupt`), attached to the job's tab
with ``Network`` events on, and reads the size of the top frame's document requests: the
``Content-Length`` its response declares (a renderer that cannot keep up stops reading,
so the bytes received alone may stay far below the limit until the deadline: measured,
10 of 70 MiB), then the bytes received (``Network.dataReceived``: decoded
``dataLength`` or ``encodedDataLength``, whichever is larger) for a body of no declared
length. Past ``limit`` it calls ``exceeded(size)`` once: the pool aborts the job
(``too_large``), which stops the load.
"""

from __future__ import annotations

import json
import logging
import threading

from .hygiene import DevTools

logger = logging.getLogger(__name__)


class SizeWatch:
    """Counts the job's main document bytes on a thread of its own (``size-<browser>``).
    :meth:`start` on the job's thread before the site's ``fetch``; :meth:`stop` from any
    thread, idempotent."""

    def __init__(self, browser, tab: str, limit: int, exceeded):
        self.browser, self.tab, self.limit, self.exceeded = browser, tab, limit, exceeded
        self.devtools: DevTools | None = None
        self._stopped = threading.Event()
        self._sizes: dict[str, list[int]] = {}  # requestId -> [decoded, encoded]

    def start(self) -> "SizeWatch":
        """Connect, attach to ``tab`` and enable its Network events (with no body buffer
        of its own: chromedriver's session keeps the bodies); then watch. Raises the
        connection's errors (the caller goes on without a watch)."""
        self.devtools = DevTools.connect(self.browser, timeout=2.0)
        try:
            session = self.devtools.call("Target.attachToTarget", {"targetId": self.tab, "flatten": True},
                                         timeout=2.0)["sessionId"]
            self.devtools.call("Network.enable", {"maxTotalBufferSize": 0, "maxResourceBufferSize": 0},
                               session, timeout=2.0)
        except BaseException:
            self.devtools.close()
            raise
        self.session = session
        threading.Thread(target=self._watch, name=f"size-{self.browser.id}", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop watching and close the connection (its session goes with it)."""
        self._stopped.set()
        if self.devtools is not None:
            self.devtools.close()

    def _watch(self) -> None:
        ws = self.devtools.ws
        ws.settimeout(None)  # stop() closes the socket: recv then fails
        while not self._stopped.is_set():
            try:
                message = json.loads(ws.recv())
            except Exception:  # noqa: BLE001 - closed by stop(), or the browser went away
                return
            if message.get("sessionId") != self.session:
                continue
            method, p = message.get("method"), message.get("params") or {}
            rid = p.get("requestId")
            if method == "Network.requestWillBeSent":
                if p.get("type") == "Document" and p.get("frameId") == self.tab:
                    self._sizes.setdefault(rid, [0, 0])
                continue
            if rid not in self._sizes:
                continue
            if method == "Network.responseReceived":
                size = _declared_length((p.get("response") or {}).get("headers") or {})
            elif method == "Network.dataReceived":
                sizes = self._sizes[rid]
                sizes[0] += p.get("dataLength", 0)
                sizes[1] += p.get("encodedDataLength", 0)
                size = max(sizes)
            else:
                continue
            if size is not None and size > self.limit:
                logger.info("browser=%s main document of %d bytes is past %d: stopped", self.browser.id,
                            size, self.limit)
                self._stopped.set()
                self.exceeded(size)
                return


def _declared_length(headers: dict) -> int | None:
    """The body's length as its ``Content-Length`` header declares it (a compressed body
    decodes to more), or None."""
    for name, value in headers.items():
        if str(name).lower() == "content-length":
            try:
                return int(str(value).split(",")[0].strip())
            except ValueError:
                return None
    return None
