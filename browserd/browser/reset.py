"""What the pool does to a browser between jobs (the DevTools side is
:mod:`browserd.browser.hygiene`): the frame navigations a job made, resource blocking,
download behaviour, and the reset itself."""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import TYPE_CHECKING

from selenium.common.exceptions import WebDriverException

from .devtools import ResetUnproven
from .hygiene import hygiene_of, origins_of, partition_keys
from .navigation import enable_network

if TYPE_CHECKING:
    from .process import Browser

logger = logging.getLogger(__name__)


#: Page events of chromedriver's performance log that name a URL a document was (or was
#: asked to be) loaded from: the top frame's and same-process frames' navigations, and the
#: requests of every frame to navigate, which also covers cross-site iframes (their own
#: navigations happen in another target) and script redirects.
_NAVIGATION_EVENTS = {"Page.frameNavigated": lambda p: (p.get("frame") or {}).get("url"),
                      "Page.frameRequestedNavigation": lambda p: p.get("url")}


def navigated_urls(driver) -> list[str]:
    """The URLs of the frame navigations since the last call (chromedriver's performance
    log, read and emptied). A job's page can run scripts in origins neither its URL nor its
    final URL names (a script redirect, an iframe); each can have stored data. Empty, not
    an error, if the log cannot be read (a driver started without it)."""
    return read_log_end(driver)[0]


def read_log_end(driver) -> tuple[list[str], list[str], list[str]]:
    """``(urls, running, tops)`` since the last read of chromedriver's performance log
    (read and emptied): the URLs of the frame navigations (see :func:`navigated_urls`), the
    guids of downloads seen begun or progressing and not over, and the URLs the top frame
    committed. ``([], [], [])`` if the log cannot be read."""
    try:
        entries = driver.execute("getLog", {"type": "performance"})["value"]
    except WebDriverException as exc:
        logger.debug("performance log unavailable: %s", str(exc).strip().splitlines()[:1])
        return [], [], []
    urls, downloads, tops = [], {}, []
    for entry in entries:
        try:
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params") or {}
            pick = _NAVIGATION_EVENTS.get(method)
            url = pick(params) if pick else None
            if method == "Page.frameNavigated" and url and not (params.get("frame") or {}).get("parentId"):
                tops.append(url)
            if method == "Page.downloadWillBegin" and params.get("guid"):
                downloads.setdefault(params["guid"], "inProgress")
            elif method == "Page.downloadProgress" and params.get("guid"):
                downloads[params["guid"]] = params.get("state", "inProgress")
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if url:
            urls.append(url)
    return urls, [g for g, state in downloads.items() if state == "inProgress"], tops


def set_blocking(browser: Browser, patterns: tuple) -> None:
    """Block requests whose URL matches ``patterns`` (Chromium wildcards) from now on, in
    every page of the browser's tab; ``()`` lifts the blocking. A no-op when unchanged."""
    if tuple(patterns) == browser.blocked:
        return
    driver = browser.driver
    if patterns and not browser.blocked:
        enable_network(driver)
    driver.execute("executeCdpCommand", {"cmd": "Network.setBlockedURLs", "params": {"urls": list(patterns)}})
    # Network stays enabled: chromedriver's performance log needs its events.
    browser.blocked = tuple(patterns)


def deny_downloads(driver) -> None:
    """No download anywhere (between jobs)."""
    driver.execute("executeCdpCommand", {"cmd": "Browser.setDownloadBehavior", "params": {"behavior": "deny"}})


def recover_tab(browser: Browser) -> None:
    """After :meth:`Browser.kill_renderers`: the driver moves to a fresh tab (the crashed
    one closed) and downloads are denied again, so the job can wind down and the reset
    prove the browser clean. Raises (DevTools or WebDriver errors) if the browser cannot
    recover; the pool then replaces it."""
    try:
        hygiene_of(browser).replace_crashed_tab()
    except Exception as exc:  # noqa: BLE001 - once more: the first fresh tab can be caught mid-crash
        logger.info("browser=%s fresh tab after a crash failed (%s); once more",
                    browser.id, str(exc).strip().splitlines()[:1])
        hygiene_of(browser).replace_crashed_tab()
    deny_downloads(browser.driver)
    browser.tab_crashed = False


def reset_browser(browser: Browser, clear_session: bool, urls=(), contacted=(), clear_cache: bool = True,
                  read_log: bool = True) -> dict:
    """Bring a browser back to one blank tab with nothing of the job left (see
    :mod:`browserd.browser.hygiene`); unless the site keeps its session, drop every cookie, the
    permissions and the storage of every origin the job touched (``urls``, the navigation
    log, the egress proxy's ``contacted`` host:ports); ``clear_cache``: the HTTP cache
    too. ``read_log``: read the frame navigations since the job's last read of the
    performance log (False: the caller read it to its end and ``urls`` holds them).
    ``contacted``: a list, or a callable returning one, called once the documents are
    stopped (so that what they connected to while being stopped is in it).
    Raises if the browser cannot be proven clean (the pool then replaces it).
    Returns the milliseconds of each step."""
    hygiene = hygiene_of(browser)

    def stores() -> tuple[list[str], list[str]]:
        # Read once the documents are stopped (the tab's blank navigation committed):
        # chromedriver makes a log read wait for a navigation under way.
        seen, running, tops = read_log_end(browser.driver) if read_log else ([], [], [])
        if running:  # begun after the job's own read; new ones are denied since the stop
            hygiene.cancel_downloads(running)
        reached = contacted() if callable(contacted) else contacted
        found = origins_of(list(urls) + seen, reached)
        if not clear_session:  # the session stays; so does the list of what a later wipe must clear
            browser.session_urls.update(found)
        # Third-party frames' storage is keyed by the top-level site too: the sites of the
        # job's top-level documents (its URLs, as the top frame or not: the job's own read
        # of the log does not tell; the top frame's later commits; the popups the stop
        # closed, and, if there were any, every host they may have gone through).
        top_urls = list(urls) + tops + hygiene.windows_seen
        if hygiene.windows_seen:
            top_urls += origins_of(contacted=reached)
        return found, partition_keys(found, top_urls)

    # The same tab, blanked (a new tab only as the fallback): a hook's overrides on it
    # (browser.dressed_by) are dropped before another site's job (Pool._before).
    timing = hygiene.reset(stores, clear_storage=clear_session, clear_cache=clear_cache, deny_downloads=True)
    remove_job_downloads(browser)
    return timing


def remove_job_downloads(browser: Browser) -> None:
    """Delete what is left of every job's download directory (``downloads/job-*`` in the
    browser's working directory): a download that began after its job's directory was
    removed, before the reset denied downloads, made it again. Never raises."""
    if not browser.workdir:
        return
    root = os.path.join(browser.workdir, "downloads")
    try:
        names = [n for n in os.listdir(root) if n.startswith("job-")]
    except OSError:
        return
    for name in names:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def clear_session_state(browser: Browser, urls) -> None:
    """Drop every cookie, the permissions, and all storage of the origins of ``urls``
    (a session site's, before another site's job): the tab is reset too."""
    found = origins_of(urls)
    try:  # the session's top-level sites are not kept: every pair of its origins is tried
        keys = partition_keys(found, found)
    except ResetUnproven:  # too many to clear: its storage goes with its processes
        browser.kill()     # (the job then fails as a browser failure: replaced, retried elsewhere)
        raise
    hygiene_of(browser).reset(lambda: (found, keys), clear_storage=True, clear_cache=False)

