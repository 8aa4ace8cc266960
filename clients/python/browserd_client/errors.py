"""One exception tree for browserd, shared by the daemon and every client.

Each class knows its wire ``code`` and whether a client may retry it. The daemon
raises these; the protocol turns them into ``{"ok": false, "error": {...}}`` replies
and the client turns the reply back into the same class.
"""

from __future__ import annotations


class BrowserdError(Exception):
    """Base class: ``code`` is the wire code, ``retryable`` tells clients what to do."""

    code = "internal"
    retryable = False

    def __init__(self, message: str = "", **details):
        super().__init__(message or self.__class__.__doc__.strip().splitlines()[0])
        self.message = str(self.args[0])
        self.details = details

    def to_wire(self) -> dict:
        error = {"code": self.code, "message": self.message, "retryable": self.retryable}
        if self.details:
            error["details"] = self.details
        return error


class BadRequest(BrowserdError):
    """The request is malformed or has invalid arguments."""

    code = "bad_request"


class UnsupportedVersion(BadRequest):
    """The request speaks a protocol version this daemon does not."""

    code = "unsupported_version"


class FrameTooLarge(BadRequest):
    """A frame is larger than the configured limit."""

    code = "too_large"


class UnknownOp(BadRequest):
    """The request names an operation the daemon does not know."""

    code = "unknown_op"


class UnknownSite(BadRequest):
    """The request names a site class the daemon has not loaded."""

    code = "unknown_site"


class ForbiddenUrl(BadRequest):
    """The URL's scheme or form is not allowed (only http and https by default)."""

    code = "forbidden_url"


class Busy(BrowserdError):
    """No browser (or connection slot) became free in time; try again later."""

    code = "busy"
    retryable = True


class ShuttingDown(BrowserdError):
    """The daemon is draining and takes no new jobs."""

    code = "shutting_down"
    retryable = True


class Timeout(BrowserdError):
    """The job did not finish before its deadline."""

    code = "timeout"


class LoadFailed(BrowserdError):
    """The browser could not load the page (DNS, refused, TLS, ...)."""

    code = "load_failed"

    @property
    def net_error(self) -> str | None:
        """The net error Chromium reported for the main document (``ERR_TOO_MANY_REDIRECTS``,
        ``ERR_EMPTY_RESPONSE``, ...), or browserd's name for what ended it
        (``navigation_loop``); None when no error was reported."""
        return self.details.get("net_error")


class ProxyFailed(BrowserdError):
    """The job's upstream proxy refused, failed to authenticate or timed out (the message
    names the proxy, never its password); another proxy or a later try may work."""

    code = "proxy_failed"
    retryable = True


class BrowserError(BrowserdError):
    """The browser failed or crashed while working on the job."""

    code = "browser_error"


class SiteError(BrowserdError):
    """The site class raised an error of its own."""

    code = "site_error"


class ScriptError(BrowserdError):
    """The job's ``evaluate`` script threw; the message is the JavaScript exception's text."""

    code = "script_error"


class Internal(BrowserdError):
    """An unexpected error inside the daemon."""

    code = "internal"


# Client-side conditions: never sent by the daemon, raised by the client library.
class NotRunning(BrowserdError):
    """No daemon state file was found: browserd is not running (or another state dir)."""

    code = "not_running"


class PermissionDenied(BrowserdError):
    """The daemon's state files exist but this user may not read them (not in its group)."""

    code = "permission_denied"


class Unavailable(BrowserdError):
    """The daemon could not be reached within the retry budget."""

    code = "unavailable"
    retryable = True


class AuthenticationFailed(BrowserdError):
    """The daemon rejected the authkey (wrong key, or another daemon on that address)."""

    code = "auth_failed"


class ProtocolError(BrowserdError):
    """The peer sent something that is not a valid browserd frame."""

    code = "protocol_error"


def _all_codes() -> dict[str, type[BrowserdError]]:
    codes: dict[str, type[BrowserdError]] = {}
    pending = [BrowserdError]
    while pending:
        cls = pending.pop()
        codes.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    codes["internal"] = Internal
    return codes


ERROR_CLASSES: dict[str, type[BrowserdError]] = _all_codes()


def error_from_wire(error: dict) -> BrowserdError:
    """Rebuild the exception a daemon reply describes; unknown codes become ``BrowserdError``."""
    code = str(error.get("code", "internal"))
    message = str(error.get("message", ""))
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        exc = BrowserdError(message)
        exc.code = code
        exc.retryable = bool(error.get("retryable", False))
        return exc
    return cls(message, **(error.get("details") or {}))
