"""What the browser itself saw of a job's main document: read from chromedriver's
performance log (``Network.*`` and ``Page.*`` events, ``perfLoggingPrefs`` with
``enableNetwork``), never from a second request.

A :class:`NetLog` collects the log's events for one job (every read empties
chromedriver's buffer, so the events are kept here and the frame navigations are
handed on to the reset's storage wipe). :meth:`NetLog.document` answers the main
frame's last navigation: status, headers, MIME type, redirect hops, the net error
Chromium reports for the document request (``Network.loadingFailed.errorText``, not
the first ``ERR_`` token of its error page: STYLE trap 16), and the download it turned
into, if it did.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from selenium.common.exceptions import WebDriverException

logger = logging.getLogger(__name__)

#: A navigation of the main frame more often than this in one job is a loop.
MAX_NAVIGATIONS = 20
#: Net errors that still leave the server's own answer (an HTTP error status without a body).
HTTP_STATUS_ERRORS = {"ERR_HTTP_RESPONSE_CODE_FAILURE"}


@dataclass
class Document:
    """The main frame's last navigation as the browser's network events tell it."""

    url: str = ""
    status: int | None = None
    headers: dict = field(default_factory=dict)
    mime_type: str = ""
    charset: str = ""
    redirects: list = field(default_factory=list)   # [{"url", "status"}] per hop, in order
    net_error: str | None = None                    # "ERR_TOO_MANY_REDIRECTS", without "net::"
    request_id: str | None = None
    download: dict | None = None                    # {"guid", "url", "filename", "state"}
    navigations: int = 0                            # of the main frame during the job
    error_page: bool = False                        # the frame shows Chromium's error page

    def wire(self) -> dict:
        """The result fields this document gives a reply: status, headers, mime_type, redirects."""
        return {"status": self.status, "headers": self.headers, "mime_type": self.mime_type,
                "redirects": self.redirects}


class NetLog:
    """The performance-log events of one job on one browser (used by the job's thread only)."""

    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    def pull(self, driver) -> bool:
        """Read (and so empty) chromedriver's performance log into this NetLog; False if
        it could not be read (a driver without the log, or a broken one)."""
        try:
            entries = driver.execute("getLog", {"type": "performance"})["value"]
        except WebDriverException as exc:
            logger.debug("performance log unavailable: %s", str(exc).strip().splitlines()[:1])
            return False
        for entry in entries:
            try:
                message = json.loads(entry["message"])["message"]
                self.events.append((message["method"], message.get("params") or {}))
            except (KeyError, TypeError, ValueError):
                continue
        return True

    def frame_urls(self) -> list[str]:
        """URLs of every frame navigation seen (the reset wipes their origins' storage)."""
        urls = []
        for method, p in self.events:
            if method == "Page.frameNavigated":
                urls.append((p.get("frame") or {}).get("url"))
            elif method == "Page.frameRequestedNavigation":
                urls.append(p.get("url"))
        return [u for u in urls if u]

    def main_navigations(self) -> int:
        """Document requests of the frame the job's first navigation loaded (the top one)."""
        frame, count = None, 0
        for method, p in self.events:
            if method == "Network.requestWillBeSent" and p.get("type") == "Document" \
                    and "redirectResponse" not in p:
                frame = frame or p.get("frameId")
                count += p.get("frameId") == frame
        return count

    def check_loop(self, driver, url: str) -> None:
        """Raise ``load_failed`` (net_error ``navigation_loop``) once the top frame has
        navigated more than :data:`MAX_NAVIGATIONS` times in this job."""
        from browserd_client.errors import LoadFailed

        self.pull(driver)
        count = self.main_navigations()
        if count > MAX_NAVIGATIONS:
            raise LoadFailed(f"{url}: navigation loop: the page navigated {count} times",
                             net_error="navigation_loop")

    def dialogs(self) -> list[dict]:
        """Every JavaScript dialog the page opened: ``{"type", "message"}``."""
        return [{"type": p.get("type", ""), "message": p.get("message", "")}
                for method, p in self.events if method == "Page.javascriptDialogOpening"]

    def downloads(self) -> dict[str, dict]:
        """guid -> {"guid", "url", "filename", "state", "frame"} of every download begun."""
        found: dict[str, dict] = {}
        for method, p in self.events:
            if method == "Page.downloadWillBegin":
                found[p.get("guid", "")] = {"guid": p.get("guid", ""), "url": p.get("url", ""),
                                            "filename": p.get("suggestedFilename", ""),
                                            "frame": p.get("frameId"), "state": "inProgress"}
            elif method == "Page.downloadProgress" and p.get("guid") in found:
                found[p["guid"]]["state"] = p.get("state", "inProgress")
        return found

    def document(self, main_frame: str | None) -> Document:
        """The main frame's last navigation that got an answer or failed."""
        requests: dict[str, Document] = {}
        order: list[str] = []
        done: set[str] = set()
        doc_of_frame = lambda p: p.get("type") == "Document" and (main_frame is None or p.get("frameId") == main_frame)  # noqa: E731
        for method, p in self.events:
            rid = p.get("requestId")
            if method == "Network.requestWillBeSent" and doc_of_frame(p):
                if rid not in requests:
                    requests[rid] = Document(request_id=rid)
                    order.append(rid)
                doc = requests[rid]
                redirect = p.get("redirectResponse")
                if redirect is not None:
                    doc.redirects.append({"url": redirect.get("url", ""), "status": redirect.get("status")})
                doc.url = (p.get("request") or {}).get("url", doc.url)
            elif rid in requests and method == "Network.responseReceived":
                response = p.get("response") or {}
                doc = requests[rid]
                doc.status = _int(response.get("status"))
                doc.headers = {str(k).lower(): v for k, v in (response.get("headers") or {}).items()}
                doc.mime_type = response.get("mimeType", "")
                doc.charset = response.get("charset", "")
                doc.url = response.get("url", doc.url)
                done.add(rid)
            elif rid in requests and method == "Network.loadingFailed":
                text = p.get("errorText", "")
                requests[rid].net_error = text.removeprefix("net::") or None
                done.add(rid)
        answered = [rid for rid in order if rid in done] or order
        doc = requests[answered[-1]] if answered else Document()
        doc.navigations = len(order)
        for item in self.downloads().values():
            if item["url"] == doc.url and (main_frame is None or item["frame"] in (None, main_frame)):
                doc.download = item
        return doc


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def main_frame(driver) -> dict:
    """The top frame as DevTools' ``Page.getFrameTree`` describes it (``{}`` if it
    cannot be read): ``id`` stays the same across the tab's navigations;
    ``unreachableUrl`` is set while the frame shows Chromium's error page for that URL."""
    try:
        tree = driver.execute("executeCdpCommand", {"cmd": "Page.getFrameTree", "params": {}})["value"]
        return dict(tree["frameTree"]["frame"])
    except (WebDriverException, KeyError, TypeError):
        return {}


def response_body(driver, request_id: str) -> bytes | None:
    """The main document's bytes as the browser received them, or None if it kept none."""
    import base64

    try:
        reply = driver.execute("executeCdpCommand", {"cmd": "Network.getResponseBody",
                                                     "params": {"requestId": request_id}})["value"]
    except WebDriverException:
        return None
    body = reply.get("body", "")
    return base64.b64decode(body) if reply.get("base64Encoded") else body.encode("utf-8")


#: ``Network.enable``'s body buffers, in bytes, for the driver's DevTools session (the
#: one ``Network.getResponseBody`` reads): DevTools' defaults keep no body past 10 MB
#: (per resource, 100 MB in all), so a 20 MiB JSON document had no body to return. A
#: body up to the reply limit is kept; beyond it the answer is ``too_large`` anyway.
#: Memory is spent only on what pages load, as with the defaults.
NETWORK_BUFFERS = {"maxResourceBufferSize": 64 << 20, "maxTotalBufferSize": 128 << 20}


def enable_network(driver) -> None:
    """(Re-)enable the Network domain on the driver's session with
    :data:`NETWORK_BUFFERS` (chromedriver's performance log enables it with the
    defaults, and again on every tab it attaches to). Raises WebDriverException."""
    driver.execute("executeCdpCommand", {"cmd": "Network.enable", "params": dict(NETWORK_BUFFERS)})


#: MIME types whose main document is a page to read from the DOM; any other is a body.
PAGE_TYPES = ("text/html", "application/xhtml+xml", "")
