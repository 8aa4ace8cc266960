"""Reading a job's result from the browser's own events: the main document's status,
headers, MIME type and redirects, a failed load's net error, a non-HTML body, and the
job's download directory. A mixin of :class:`browserd.pool.Pool` (the job's thread)."""

from __future__ import annotations

import logging
import os
import shutil
import time

from browserd_client.errors import FrameTooLarge, LoadFailed, Timeout
from browserd_client.protocol import MAX_REPLY_BYTES

from ..browser import Browser
from ..browser.hygiene import hygiene_of
from ..browser.navigation import MAX_NAVIGATIONS, PAGE_TYPES, Document, NetLog, main_frame, response_body
from ..outcome import first_line as _first_line, navigation_failed
from ..sites.base import Page
from .context import JobContext

logger = logging.getLogger(__name__)


class Documents:
    """The main document of a job, read on the job's thread."""

    @staticmethod
    def _document(browser: Browser, netlog: NetLog) -> Document:
        """The main document as the network events tell it (read now), and whether the
        main frame shows Chromium's error page (DevTools' ``unreachableUrl``)."""
        netlog.pull(browser.driver)
        frame = hygiene_of(browser).main_frame()  # over DevTools: no chromedriver round trip
        if frame is None:
            frame = main_frame(browser.driver)
        doc = netlog.document(frame.get("id"))
        doc.error_page = bool(frame.get("unreachableUrl"))
        return doc

    def _complete(self, ctx: JobContext, page: Page):
        """The page with what the browser's own network events say of its main document:
        status, headers, MIME type, redirects; a failed navigation raises its net error;
        a document that is not HTML (or a download) comes back as its bytes."""
        browser, job, netlog, downloads = ctx.browser, ctx.job, ctx.netlog, ctx.downloads
        driver = browser.driver
        doc = self._document(browser, netlog)
        if doc.navigations > MAX_NAVIGATIONS:
            raise LoadFailed(f"{job.url}: navigation loop: the page navigated {doc.navigations} times",
                             net_error="navigation_loop")
        if doc.download is not None and downloads is not None:
            body = self._download_body(browser, netlog, doc, downloads, job)
            page = Page(source="", url=doc.url or page.url, title="", body=body)
        elif navigation_failed(doc):
            raise self._load_error(browser, job.url, doc.net_error)
        elif doc.net_error:  # an HTTP error status without a body: Chrome's page is not the server's
            page = Page(source="", url=doc.url or page.url, title="", body=b"")
        elif doc.error_page:
            # No network events (a driver without the log): Chrome's error page is never a result.
            raise self._load_error(browser, job.url, None, error_page=True)
        elif doc.request_id and doc.mime_type.split(";")[0].strip().lower() not in PAGE_TYPES:
            body = response_body(driver, doc.request_id)
            if body is not None:
                page = Page(source="", url=doc.url or page.url, title=page.title, body=body)
        page.status, page.headers, page.mime_type = doc.status, doc.headers, doc.mime_type
        page.redirects = doc.redirects
        if page.body is not None and (len(page.body) + 2) // 3 * 4 > MAX_REPLY_BYTES - (1 << 16):
            raise FrameTooLarge(f"{job.url}: the {doc.mime_type or 'document'} body of {len(page.body)} bytes "
                                f"is past the reply limit of {MAX_REPLY_BYTES} bytes")
        return page, doc

    def _begin_downloads(self, browser: Browser, job) -> str | None:
        """The job's own download directory inside the browser's (the state dir); None
        for a Grid browser (its files are on the node)."""
        if not browser.workdir:
            return None
        directory = os.path.join(browser.workdir, "downloads", f"job-{job.id}")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        hygiene_of(browser).set_downloads(directory)  # denied again by the reset's first batch
        return directory

    def _download_body(self, browser: Browser, netlog: NetLog, doc: Document, directory: str, job) -> bytes:
        """Wait (within the job's time) for the main document's download, and read it."""
        guid = doc.download["guid"]
        while True:
            state = netlog.downloads().get(guid, {}).get("state")
            if state == "completed":
                break
            if state == "canceled":
                raise LoadFailed(f"{job.url}: the download was cancelled", net_error="download_canceled")
            if job.remaining() <= 0:
                raise Timeout(f"{job.url}: the download did not finish within the job's {job.timeout:.1f}s")
            job.check()
            time.sleep(0.05)
            netlog.pull(browser.driver)
        path = os.path.join(directory, guid)
        size = os.path.getsize(path)
        if (size + 2) // 3 * 4 > MAX_REPLY_BYTES - (1 << 16):
            raise FrameTooLarge(f"{job.url}: the download of {size} bytes is past the reply limit "
                                f"of {MAX_REPLY_BYTES} bytes")
        with open(path, "rb") as f:
            return f.read()

    def _end_downloads(self, browser: Browser, netlog: NetLog, directory: str) -> None:
        """Cancel the job's downloads its NetLog saw running (over DevTools: no wait for a
        navigation), delete its directory. The performance log is not read here (the
        reset reads the rest, cancels a download begun since, denies new ones and removes
        a directory a late download made again)."""
        running = [g for g, d in netlog.downloads().items() if d["state"] == "inProgress"]
        if running:
            try:
                hygiene_of(browser).cancel_downloads(running)
            except Exception as exc:  # noqa: BLE001 - the reset finds a broken browser
                logger.info("browser=%s cancelling downloads failed: %s", browser.id, _first_line(exc))
        shutil.rmtree(directory, ignore_errors=True)
