"""A browser-level DevTools (CDP) connection of the daemon's own, beside chromedriver's:
commands by id, several pipelined in one batch, events skipped. Used by the per-job reset
(:mod:`.hygiene`), the document size watch (:mod:`.docsize`) and the job options'
request rewriting (:mod:`browserd.joboptions.apply`). Reaches the browser inside its
network namespace (``Browser.devtools_socket``), or through the Grid's ``se:cdp``."""

from __future__ import annotations

import http.client
import itertools
import json
import time

#: Seconds a DevTools step may take (a hung renderer: the reset replaces the tab instead).
STEP_TIMEOUT = 3.0


class ResetUnproven(RuntimeError):
    """The reset could not prove the browser clean: the pool replaces it."""


class DevToolsError(RuntimeError):
    """A DevTools command answered with an error."""


class DevTools:
    """A browser-level DevTools (CDP) connection: commands by id; events skipped, except
    those named in :attr:`keep`, which :meth:`batch` appends to :attr:`events` as it reads
    (the caller sets both and clears them)."""

    def __init__(self, ws):
        self.ws = ws
        self._ids = itertools.count(1)
        self.keep: frozenset = frozenset()  # event methods to keep
        self.events: list[dict] = []        # kept events: {"method", "params", "sessionId"}

    @classmethod
    def connect(cls, browser, timeout: float = 5.0) -> "DevTools":
        """A browser-level connection over ``browser``'s DevTools port (in its namespace),
        or the Grid's ``se:cdp`` socket. Raises ``ResetUnproven`` when the Grid offers
        none, ``OSError``/websocket errors when the connection fails."""
        import websocket  # websocket-client: a dependency of Selenium

        if browser.spec.grid_url:  # the Grid proxies a browser-level CDP socket
            url = browser.driver.capabilities.get("se:cdp")
            if not url:
                raise ResetUnproven("the Grid offers no CDP socket")
            return cls(websocket.create_connection(url, timeout=timeout, suppress_origin=True))
        port = int(browser.debugger_address.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.sock = browser.devtools_socket(port, timeout)  # in the namespace, if it has one
        try:
            conn.request("GET", "/json/version")
            url = json.loads(conn.getresponse().read())["webSocketDebuggerUrl"]
        finally:
            conn.close()
        return cls(websocket.create_connection(url, timeout=timeout, suppress_origin=True,
                                               socket=browser.devtools_socket(port, timeout)))

    def batch(self, calls, timeout: float = STEP_TIMEOUT) -> list:
        """Send every ``(method, params, session)`` at once; return their results in order,
        a :class:`DevToolsError` in place of a command that failed. Raises TimeoutError
        when not all answered within ``timeout``."""
        ids = []
        for method, params, session in calls:
            msg_id = next(self._ids)
            msg = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            self.ws.send(json.dumps(msg))
            ids.append(msg_id)
        pending, results = set(ids), {}
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"DevTools did not answer {len(pending)} of {len(ids)} commands in {timeout:.1f}s")
            self.ws.settimeout(left)
            try:
                reply = json.loads(self.ws.recv())
            except Exception as exc:  # websocket's timeout is its own class
                if "timed out" in str(exc).lower() or type(exc).__name__.endswith("TimeoutException"):
                    continue
                raise
            if "id" not in reply:
                if reply.get("method") in self.keep:
                    self.events.append(reply)
                continue
            if reply.get("id") in pending:
                pending.discard(reply["id"])
                error = reply.get("error")
                results[reply["id"]] = DevToolsError(error.get("message", str(error))) if error else reply.get("result", {})
        return [results[i] for i in ids]

    def send(self, calls) -> None:
        """Send every ``(method, params, session)`` without waiting for the answers (a later
        :meth:`batch` skips them). Raises what the socket raises."""
        for method, params, session in calls:
            msg = {"id": next(self._ids), "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            self.ws.send(json.dumps(msg))

    def call(self, method: str, params=None, session=None, timeout: float = STEP_TIMEOUT):
        """One CDP command (``session``: a flattened target session id); its result dict.
        Raises ``DevToolsError`` if the command answered an error, ``TimeoutError``
        past ``timeout`` seconds."""
        result = self.batch([(method, params, session)], timeout)[0]
        if isinstance(result, DevToolsError):
            raise result
        return result

    def close(self) -> None:
        """Close the socket; never raises."""
        try:
            self.ws.close()
        except Exception:
            pass
