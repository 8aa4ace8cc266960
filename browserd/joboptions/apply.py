"""Apply a job's request options to the browser's tab, and undo them after the job.

Overrides go through chromedriver's own DevTools session (``executeCdpCommand``), so they
hold for every navigation the site makes in the job: ``Network.setExtraHTTPHeaders``,
``Network.setCookies``, ``Emulation.setUserAgentOverride`` (user agent; with ``locale``
also ``Accept-Language`` and ``navigator.language``), ``Emulation.setDeviceMetricsOverride``,
``Emulation.setLocaleOverride`` (Intl) and ``Emulation.setTimezoneOverride``. What was set
is recorded on the browser (``browser.job_overrides``) before it is set, so that
:func:`undo` (in the reset) clears exactly that, even after a failure half-way.

The main request's method and body: chromedriver can only navigate with GET, and it runs
one command at a time, so the request is rewritten by a :class:`MainRequest`, a DevTools
session of its own on the tab (``Fetch.enable`` for documents) served by a thread while
the site's ``driver.get`` blocks: the first main-frame document request for the job's URL
is continued with the method, the body (``postData``) and a ``Content-Type`` header; every
other request goes on unchanged, and the interception ends with the first match.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from urllib.parse import urlsplit, urlunsplit

from selenium.common.exceptions import WebDriverException

from browserd_client.errors import BadRequest

logger = logging.getLogger(__name__)


def cdp(driver, method: str, params: dict | None = None) -> dict:
    """One DevTools command through chromedriver's session of the current tab."""
    return driver.execute("executeCdpCommand", {"cmd": method, "params": params or {}})["value"]


def _overrides(browser) -> set:
    found = getattr(browser, "job_overrides", None)
    if found is None:
        found = browser.job_overrides = set()
    return found


def apply(browser, job):
    """Set ``job.options``' request options on the browser's tab. Returns the
    :class:`MainRequest` rewriting the main request (None: a plain GET). Raises
    ``BadRequest`` for a value the browser refuses (an unknown time zone)."""
    options, driver = job.options, browser.driver
    done = _overrides(browser)
    if options.headers:
        done.add("headers")
        cdp(driver, "Network.setExtraHTTPHeaders", {"headers": options.headers})
    if options.cookies:
        done.add("cookies")  # the reset's Storage.clearCookies drops them
        _refusable(driver, "cookies", "Network.setCookies", {"cookies": options.cookies},
                   shown=", ".join(f"{c['name']} (domain {c['domain']!r})" for c in options.cookies[:5]))
    if options.user_agent or options.locale:
        done.add("user_agent")
        agent = options.user_agent or _default_agent(browser)
        params = {"userAgent": agent}
        if options.locale:
            params["acceptLanguage"] = _accept_language(options.locale)
        cdp(driver, "Emulation.setUserAgentOverride", params)
    if options.viewport:
        v = options.viewport
        done.add("viewport")
        cdp(driver, "Emulation.setDeviceMetricsOverride", {
            "width": v["width"], "height": v["height"], "deviceScaleFactor": v["device_scale_factor"],
            "mobile": v["mobile"]})
    if options.locale:
        done.add("locale")
        _refusable(driver, "locale", "Emulation.setLocaleOverride", {"locale": options.locale.replace("-", "_")})
    if options.timezone:
        done.add("timezone")
        _refusable(driver, "timezone", "Emulation.setTimezoneOverride", {"timezoneId": options.timezone})
    if options.main_request:
        return MainRequest.start(browser, job)
    return None


def undo(browser) -> None:
    """Clear the overrides the last job set on the browser's tab (nothing when it set
    none). Raises what chromedriver raises (the reset then replaces the browser)."""
    done = getattr(browser, "job_overrides", None)
    if not done:
        return
    driver = browser.driver
    if "headers" in done:
        cdp(driver, "Network.setExtraHTTPHeaders", {"headers": {}})
    if "user_agent" in done:
        cdp(driver, "Emulation.setUserAgentOverride", {"userAgent": ""})  # "": no override
    if "viewport" in done:
        cdp(driver, "Emulation.clearDeviceMetricsOverride")
    if "locale" in done:
        cdp(driver, "Emulation.setLocaleOverride", {})
    if "timezone" in done:
        cdp(driver, "Emulation.setTimezoneOverride", {"timezoneId": ""})
    done.clear()


def _refusable(driver, option: str, method: str, params: dict, shown: str | None = None) -> None:
    """A command whose refusal, by a browser that is not broken, is the request's fault:
    a well-formed locale or time zone the browser does not know (DevTools answers only
    with a message, e.g. "Invalid timezone ID"), a cookie it will not hold (a domain such
    as ".."). ``shown``: the value as the message names it (default: the parameter's)."""
    from ..outcome import browser_failed

    try:
        cdp(driver, method, params)
    except WebDriverException as exc:
        if browser_failed(exc, browser_alive=lambda: True, browser_responds=lambda: _responds(driver)):
            raise
        text = (getattr(exc, "msg", None) or str(exc)).strip().splitlines()
        shown = shown if shown is not None else repr(next(iter(params.values())))
        raise BadRequest(f"option {option!r}: the browser refused {shown}"
                         + (f": {text[0]}" if text else "")) from None


def _responds(driver) -> bool:
    """Whether the driver still answers a WebDriver round trip."""
    try:
        driver.execute("getCurrentUrl")
        return True
    except Exception:  # noqa: BLE001 - any failure means it does not
        return False


def _accept_language(locale: str) -> str:
    """The languages of ``Accept-Language`` (Chromium adds the q-values)."""
    language = locale.split("-")[0]
    return locale if language == locale else f"{locale},{language}"


def _default_agent(browser) -> str:
    """The browser's own user agent (kept on the browser: asked once)."""
    agent = getattr(browser, "default_user_agent", None)
    if agent is None:
        agent = browser.default_user_agent = cdp(browser.driver, "Browser.getVersion")["userAgent"]
    return agent


def _same_url(a: str, b: str) -> bool:
    """Equal once the fragment is dropped and an empty path reads "/" (as Chromium sends it)."""
    def norm(url):
        parts = urlsplit(url)
        return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))
    try:
        return norm(a) == norm(b)
    except ValueError:
        return False


class MainRequest:
    """Rewrites the job's main request (method, body, Content-Type) from a DevTools session
    of its own on the tab, served by a thread (chromedriver is blocked in ``get`` meanwhile).
    :meth:`close` ends it; closing the connection ends the interception in Chromium."""

    def __init__(self, devtools, session: str, tab: str, job):
        self.devtools, self.session, self.tab, self.job = devtools, session, tab, job
        self.matched = False  # the main request was rewritten
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"main-request-{job.id}", daemon=True)

    @classmethod
    def start(cls, browser, job) -> "MainRequest":
        """Open a DevTools connection of its own on the browser's tab (the job's thread's
        current window), enable ``Fetch`` for documents, and serve it from a thread.
        Raises what the connection or DevTools raise (the connection is closed then)."""
        from ..browser.devtools import DevTools

        devtools = DevTools.connect(browser)
        try:
            tab = browser.driver.current_window_handle  # chromedriver's handles are target ids
            session = devtools.call("Target.attachToTarget", {"targetId": tab, "flatten": True})["sessionId"]
            devtools.call("Fetch.enable", {"patterns": [{"urlPattern": "*", "resourceType": "Document",
                                                         "requestStage": "Request"}]}, session)
        except BaseException:
            devtools.close()
            raise
        main = cls(devtools, session, tab, job)
        main._thread.start()
        return main

    def _serve(self) -> None:
        from websocket import WebSocketTimeoutException  # websocket-client: Selenium's

        ws = self.devtools.ws
        ws.settimeout(0.2)
        ids = iter(range(1 << 20, 1 << 30))
        while not self._stop.is_set():
            try:
                message = json.loads(ws.recv())
            except (WebSocketTimeoutException, TimeoutError):
                continue
            except Exception:  # noqa: BLE001 - closed: the tab or the browser went away
                return
            if message.get("method") != "Fetch.requestPaused" or message.get("sessionId") != self.session:
                continue
            p = message.get("params") or {}
            request = p.get("request") or {}
            params, rewritten = {"requestId": p.get("requestId")}, False
            if not self.matched and p.get("frameId") == self.tab and _same_url(request.get("url", ""), self.job.url):
                self.matched = rewritten = True
                options = self.job.options
                params["method"] = options.method
                headers = {k: v for k, v in (request.get("headers") or {}).items() if k.lower() != "content-type"}
                if options.body is not None:
                    params["postData"] = base64.b64encode(options.body).decode("ascii")
                    headers["Content-Type"] = options.content_type
                params["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
                logger.debug("job=%s main request rewritten: %s %s", self.job.id, options.method, request.get("url"))
            try:
                ws.send(json.dumps({"id": next(ids), "method": "Fetch.continueRequest", "params": params,
                                    "sessionId": self.session}))
                if rewritten:  # the only one: the rest of the job's requests are not held
                    ws.send(json.dumps({"id": next(ids), "method": "Fetch.disable", "sessionId": self.session}))
            except Exception:  # noqa: BLE001 - the tab went away; the job reports what it saw
                return

    def close(self) -> None:
        """Stop serving: the connection is shut at once (the thread's ``recv`` fails and it
        returns, instead of noticing the stop at its next 0.2 s receive timeout, which
        cost every POST job ~100 ms), then the thread is waited for (up to 1 s)."""
        self._stop.set()
        sock = getattr(self.devtools.ws, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv (a close would not)
            except OSError:
                pass
        self._thread.join(timeout=1.0)
        self.devtools.close()
