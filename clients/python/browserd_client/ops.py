"""The operations as a client sends and reads them, without I/O: what a ``fetch`` sends,
how long a client waits for its reply, and the result types both clients return.

The blocking :class:`~browserd_client.Client` and the asyncio
:class:`~browserd_client.AsyncClient` build every request and read every result here, so
the two differ only in how they wait.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from .errors import BrowserdError
from .options import decode_outputs, split_fetch_kwargs

#: Seconds a client waits for a reply beyond the job's own timeout.
REPLY_GRACE = 10.0


class _SiteTimeout:
    def __repr__(self):
        return "SITE_TIMEOUT"


#: ``fetch(..., timeout=SITE_TIMEOUT)`` sends no timeout: the daemon gives the job the site's
#: own (its ``timeout``, else the daemon's ``job_timeout``). The client then waits for the
#: reply for its own ``timeout`` + 10 s, so make that at least as long as the site's.
SITE_TIMEOUT = _SiteTimeout()


def fetch_request(url: str, site: str, timeout, default: float, params: dict) -> tuple[dict, float]:
    """A fetch's request args, and how long (seconds) to wait for its reply.

    ``timeout``: seconds, None for ``default`` (the client's own), or :data:`SITE_TIMEOUT`
    to send none. ``params`` holds the fetch's keyword arguments: site params and job
    options, split by :func:`~browserd_client.options.split_fetch_kwargs` (raises
    TypeError/ValueError for a bad option)."""
    params, options = split_fetch_kwargs(params)
    args = {"url": url, "site": site, "params": params}
    if options:
        args["options"] = options
    if timeout is SITE_TIMEOUT:
        return args, default + REPLY_GRACE
    timeout = default if timeout is None else timeout
    return dict(args, timeout=timeout), timeout + REPLY_GRACE


@dataclass(frozen=True)
class FetchResult:
    """A page a daemon fetched: its rendered source, where it ended up, and how it was
    served. Immutable; times are seconds."""

    source: str                 #: the rendered page source
    url: str                    #: the final URL, after redirects
    title: str
    site: str
    requested_url: str
    browser: str = ""           #: id of the daemon's browser that served it
    timing: dict = field(default_factory=dict)  #: seconds: queue_wait, fetch, total
    attempts: int = 1           #: 2 when the first browser crashed and the daemon retried
    notes: dict = field(default_factory=dict)  #: what the site class reported (e.g. scrolls, dialogs)
    status: int | None = None   #: HTTP status of the main document (None: not HTTP, e.g. data:)
    headers: dict = field(default_factory=dict)  #: its response headers, lower-case names
    mime_type: str = ""         #: its MIME type as the browser saw it
    redirects: list = field(default_factory=list)  #: [{"url", "status"}] of each redirect hop
    body: bytes | None = None   #: a document that is not HTML (JSON, CSV, PDF, an attachment): its bytes
    charset: str = ""           #: the document's own charset (document.characterSet)
    # Outputs, only when the job asked for them (see browserd_client.options.decode_outputs):
    screenshot: bytes | None = None  #: PNG or JPEG bytes (``screenshot=``)
    screenshot_type: str | None = None  #: "png" or "jpeg"
    pdf: bytes | None = None    #: PDF bytes (``pdf=``)
    value: object = None        #: the JSON value of ``evaluate=``
    responses: list | None = None  #: captured responses (``capture=``), dicts; binary bodies as bytes
    responses_dropped: int = 0  #: matching responses beyond the daemon's count cap
    cookies: list | None = None  #: the browser's cookies at the end of the job (``cookies_out=True``)

    @property
    def ok(self) -> bool:
        """The main document's status is below 400 (or it has none)."""
        return self.status is None or self.status < 400


def result_from_wire(r: dict, url: str, site: str) -> FetchResult:
    """The :class:`FetchResult` of a fetch reply's result ``r`` for the request of ``url``
    through ``site`` (older daemons send no metadata: the fields keep their defaults)."""
    body = r.get("body")
    return FetchResult(
        source=r.get("source", ""), url=r.get("url", ""), title=r.get("title", ""),
        site=r.get("site", site), requested_url=url, browser=r.get("browser", ""),
        timing=r.get("timing", {}), attempts=r.get("attempts", 1), notes=r.get("notes") or {},
        status=r.get("status"), headers=r.get("headers") or {}, mime_type=r.get("mime_type") or "",
        redirects=r.get("redirects") or [], body=base64.b64decode(body) if body is not None else None,
        charset=r.get("charset") or "", **decode_outputs(r),
    )


def sites_with_problems(reply) -> dict:
    """The ``{"sites": [...], "problems": [...]}`` of a ``sites`` reply asked with
    ``problems``; a daemon from before that argument answers with the list alone."""
    return reply if isinstance(reply, dict) else {"sites": reply, "problems": []}


@dataclass(frozen=True)
class MapResult:
    """The outcome of one URL of a batch: a page (``ok``) or an error code, never an exception."""

    url: str
    ok: bool
    result: FetchResult | None = None   #: the page, when ok
    code: str | None = None             #: wire error code (``load_failed``, ``forbidden_url``, ...)
    message: str | None = None
    index: int = 0                      #: position of the URL in the input


def map_failure(url: str, index: int, exc: Exception) -> MapResult:
    """The :class:`MapResult` of the ``index``-th URL, ``url``, whose fetch raised ``exc``
    (TypeError/ValueError, the item's options as the client checks them, have the code
    ``bad_request``; any other error that is not a :class:`BrowserdError`, ``internal``)."""
    if isinstance(exc, BrowserdError):
        return MapResult(url, False, code=exc.code, message=exc.message, index=index)
    if isinstance(exc, (TypeError, ValueError)):
        return MapResult(url, False, code="bad_request", message=str(exc), index=index)
    return MapResult(url, False, code="internal", message=f"{type(exc).__name__}: {exc}", index=index)


__all__ = ["REPLY_GRACE", "SITE_TIMEOUT", "fetch_request", "FetchResult", "result_from_wire",
           "sites_with_problems", "MapResult", "map_failure"]
