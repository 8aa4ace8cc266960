"""Watching the size of a job's main document while it loads, from another thread.

A document past the reply limit must be refused without reading it all: a 70 MiB
text/plain page keeps chromedriver's ``get`` blocked past the job's deadline (its
renderer lays the text out for minutes), so the job's own thread, and the performance
log only it can read, learn of the size too late. A :class:`SizeWatch` has its own
browser-level DevTools connection (like :mod:`.interrupt`), kept open across jobs and
attached to the browser's tab with ``Network`` events on, and reads the size of the top
frame's document requests: the
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

from .devtools import DevTools

logger = logging.getLogger(__name__)


class SizeWatch:
    """One per browser, kept across jobs: a browser-level DevTools connection attached to
    the browser's tab with ``Network`` events on, read by a thread of its own
    (``size-<browser>``). Per job it costs no DevTools round trip: :meth:`watch` (the
    job's thread, before the site's ``fetch``) arms it with the job's ``exceeded``
    callback, :meth:`unwatch` disarms it. A new tab (a fresh tab after another site's
    hooks, a crashed tab) is attached anew, on a new connection. :meth:`close` from any
    thread, idempotent (the browser's ``quit``, ``kill``, the fork)."""

    def __init__(self, browser, limit: int):
        self.browser, self.limit = browser, limit
        self.devtools: DevTools | None = None
        self.tab: str | None = None
        self.session: str | None = None
        self._lock = threading.Lock()  # guards _exceeded and _sizes (job's and reader threads)
        self._exceeded = None
        self._sizes: dict[str, list[int]] = {}  # requestId -> [decoded, encoded]
        self._reader: threading.Thread | None = None

    def watch(self, tab: str, exceeded) -> None:
        """Call ``exceeded(size)`` once if a top-frame document of ``tab`` passes the limit
        before :meth:`unwatch`. Attaches first when the tab changed or the connection is
        gone; raises the connection's errors (the caller goes on without a watch)."""
        if self.devtools is None or tab != self.tab or not (self._reader and self._reader.is_alive()):
            self._attach(tab)
        with self._lock:
            self._sizes = {}
            self._exceeded = exceeded

    def unwatch(self) -> None:
        """Disarm: events from now on call nothing."""
        with self._lock:
            self._exceeded = None
            self._sizes = {}

    def close(self) -> None:
        """Close the connection (the reader thread ends with it)."""
        self.unwatch()
        devtools, self.devtools, self.tab = self.devtools, None, None
        if devtools is not None:
            devtools.close()

    def _attach(self, tab: str) -> None:
        """A new connection attached to ``tab``, its Network events on (with no body
        buffer of its own: chromedriver's session keeps the bodies); then the reader."""
        self.close()
        devtools = DevTools.connect(self.browser, timeout=2.0)
        try:
            session = devtools.call("Target.attachToTarget", {"targetId": tab, "flatten": True},
                                    timeout=2.0)["sessionId"]
            devtools.call("Network.enable", {"maxTotalBufferSize": 0, "maxResourceBufferSize": 0},
                          session, timeout=2.0)
        except BaseException:
            devtools.close()
            raise
        self.devtools, self.tab, self.session = devtools, tab, session
        self._reader = threading.Thread(target=self._read, args=(devtools, session),
                                        name=f"size-{self.browser.id}", daemon=True)
        self._reader.start()

    def _read(self, devtools: DevTools, session: str) -> None:
        ws = devtools.ws
        ws.settimeout(None)  # close() closes the socket: recv then fails
        while True:
            try:
                message = json.loads(ws.recv())
            except Exception:  # noqa: BLE001 - closed by close(), or the browser went away
                return
            if message.get("sessionId") == session:
                self._event(message.get("method"), message.get("params") or {})

    def _event(self, method: str | None, p: dict) -> None:
        with self._lock:
            if self._exceeded is None:
                return
            rid = p.get("requestId")
            if method == "Network.requestWillBeSent":
                if p.get("type") == "Document" and p.get("frameId") == self.tab:
                    self._sizes.setdefault(rid, [0, 0])
                return
            if rid not in self._sizes:
                return
            if method == "Network.responseReceived":
                size = _declared_length((p.get("response") or {}).get("headers") or {})
            elif method == "Network.dataReceived":
                sizes = self._sizes[rid]
                sizes[0] += p.get("dataLength", 0)
                sizes[1] += p.get("encodedDataLength", 0)
                size = max(sizes)
            else:
                return
            if size is None or size <= self.limit:
                return
            exceeded, self._exceeded = self._exceeded, None
        logger.info("browser=%s main document of %d bytes is past %d: stopped", self.browser.id, size, self.limit)
        exceeded(size)


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
