"""Stopping a blocked page load from another thread: ``Page.stopLoading`` over the
browser's own DevTools socket, a connection separate from chromedriver's (which
serializes commands, so a second WebDriver call would only queue behind the blocked
one; STYLE trap 9)."""

from __future__ import annotations

import http.client
import json
import logging

logger = logging.getLogger(__name__)


def interrupt_page_loads(browser, timeout: float = 1.0) -> bool:
    """Stop the page loading, from any thread: ``Page.stopLoading`` over the browser's
    own DevTools socket, a connection separate from chromedriver's (which serializes
    commands, so a second WebDriver call would only queue behind the blocked one).
    The blocked ``get`` then returns and the browser stays usable. False if it failed."""
    if browser.killed or browser.driver is None:
        return False
    import websocket  # websocket-client: a dependency of Selenium

    if browser.spec.grid_url:
        return _interrupt_through_grid(browser, websocket, timeout)
    address = browser.debugger_address
    if not address:
        return False
    port = int(address.rsplit(":", 1)[1])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.sock = browser.devtools_socket(port, timeout)
        try:
            conn.request("GET", "/json/list")
            targets = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        for target in targets:
            if target.get("type") != "page" or "webSocketDebuggerUrl" not in target:
                continue
            ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout,
                                             suppress_origin=True,
                                             socket=browser.devtools_socket(port, timeout))
            try:
                ws.send(json.dumps({"id": 1, "method": "Page.stopLoading"}))
                ws.recv()
            finally:
                ws.close()
        return True
    except Exception as exc:
        logger.info("browser=%s interrupt failed: %s", browser.id, exc)
        return False


def _interrupt_through_grid(browser, websocket, timeout: float) -> bool:
    """On a Grid the browser's DevTools port is the node's; the Grid proxies a
    browser-level CDP socket (``se:cdp``): attach to the page, then stop it."""
    url = browser.driver.capabilities.get("se:cdp")
    if not url:
        return False
    try:
        ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
    except Exception as exc:
        logger.info("browser=%s interrupt failed: %s", browser.id, exc)
        return False
    try:
        def call(msg_id, method, params=None, session=None):
            msg = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            ws.send(json.dumps(msg))
            while True:
                reply = json.loads(ws.recv())
                if reply.get("id") == msg_id:
                    return reply.get("result", {})

        targets = call(1, "Target.getTargets").get("targetInfos", [])
        for n, target in enumerate(t for t in targets if t.get("type") == "page"):
            session = call(100 + n, "Target.attachToTarget",
                           {"targetId": target["targetId"], "flatten": True}).get("sessionId")
            if session:
                call(200 + n, "Page.stopLoading", session=session)
        return True
    except Exception as exc:
        logger.info("browser=%s interrupt failed: %s", browser.id, exc)
        return False
    finally:
        ws.close()

