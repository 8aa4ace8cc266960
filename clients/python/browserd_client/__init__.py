"""browserd_client: talk to a browserd daemon (stdlib only).

    from browserd_client import Client
    with Client() as c:
        html = c.page_source("https://example.org/", wait_for="#content")
"""

from .client import Client, FetchResult
from .errors import (
    AuthenticationFailed, BadRequest, BrowserdError, BrowserError, Busy, ForbiddenUrl,
    FrameTooLarge, Internal, LoadFailed, NotRunning, ProtocolError, ShuttingDown, SiteError,
    Timeout, Unavailable, UnknownOp, UnknownSite, UnsupportedVersion,
)
from .retry import Backoff

__version__ = "0.1.0"

__all__ = [
    "Client", "FetchResult", "Backoff", "AuthenticationFailed", "BadRequest", "BrowserdError",
    "BrowserError", "Busy", "ForbiddenUrl", "FrameTooLarge", "Internal", "LoadFailed",
    "NotRunning", "ProtocolError", "ShuttingDown", "SiteError", "Timeout", "Unavailable",
    "UnknownOp", "UnknownSite", "UnsupportedVersion",
]
