"""browserd_client: talk to a browserd daemon (stdlib only).

    from browserd_client import Client
    with Client() as c:
        html = c.page_source("https://example.org/", wait_for="#content")
        for r in c.map(urls, concurrency=4):        # many URLs, failures as values
            print(r.url, r.ok, r.code)

    from browserd_client import AsyncClient           # the same, for asyncio
"""

from .client import Client
from .errors import (
    AuthenticationFailed, BadRequest, BrowserdError, BrowserError, Busy, ForbiddenUrl,
    FrameTooLarge, Internal, LoadFailed, NotRunning, PermissionDenied, ProtocolError, ProxyFailed, ScriptError,
    ShuttingDown, SiteError, Timeout, Unavailable, UnknownOp, UnknownSite, UnsupportedVersion,
)
from .ops import SITE_TIMEOUT, FetchResult, MapResult
from .retry import Backoff

__version__ = "0.1.0"


def __getattr__(name):  # AsyncClient imports asyncio: only for those who use it
    if name == "AsyncClient":
        from .aio import AsyncClient

        return AsyncClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Client", "AsyncClient", "FetchResult", "MapResult", "Backoff", "SITE_TIMEOUT",
    "AuthenticationFailed", "BadRequest", "BrowserdError", "BrowserError", "Busy", "ForbiddenUrl",
    "FrameTooLarge", "Internal", "LoadFailed", "NotRunning", "PermissionDenied", "ProtocolError", "ProxyFailed",
    "ScriptError", "ShuttingDown",
    "SiteError", "Timeout", "Unavailable", "UnknownOp", "UnknownSite", "UnsupportedVersion",
]
