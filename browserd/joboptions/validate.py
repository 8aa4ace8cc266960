"""Validation of a fetch's job options (issue 14; the README's "Job options" table is the
wire contract): each bad value is a ``bad_request`` whose message names the option.

:func:`validate` turns the request's ``options`` object into a :class:`JobOptions`, or None
when the job asks for nothing beyond the proxy options (then the daemon does no per-job
DevTools work at all).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from browserd_client.errors import BadRequest

#: The options this module validates (``proxy``/``proxy_pool`` are browserd.jobs').
OPTIONS = ("method", "body", "content_type", "headers", "cookies", "user_agent", "viewport",
           "locale", "timezone", "wait_until", "settle_ms", "screenshot", "pdf", "evaluate",
           "capture", "capture_max_bytes", "cookies_out")
WAIT_UNTIL = ("load", "domcontentloaded", "networkidle", "settled")
#: Paper sizes of ``pdf.format``: (width, height) in inches.
PAPER = {"A3": (11.69, 16.54), "A4": (8.27, 11.69), "A5": (5.83, 8.27),
         "Letter": (8.5, 11.0), "Legal": (8.5, 14.0), "Tabloid": (11.0, 17.0)}
SAME_SITE = ("Strict", "Lax", "None")
DEFAULT_SETTLE_MS = 300
DEFAULT_CAPTURE_MAX_BYTES = 1 << 20
MAX_CAPTURE_BYTES = 64 << 20
MAX_HEADERS = 100
MAX_COOKIES = 300
MAX_PATTERNS = 100
MAX_TEXT = 8192                  # a header value, a user agent, a cookie value
MAX_SCRIPT = 1 << 20             # evaluate's source, in characters
MAX_DIMENSION = 10000            # viewport pixels
MAX_SETTLE_MS = 60000
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")          # RFC 9110 token
_LOCALE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*\Z")   # BCP 47, loosely
_TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*\Z")
_FORBIDDEN_METHODS = ("CONNECT", "TRACE", "TRACK")     # the Fetch standard's forbidden methods
_FORBIDDEN_HEADERS = ("host", "content-length", "transfer-encoding", "connection")
#: Headers Chromium's network service refuses from a caller (services/network/public/cpp/
#: header_util.cc ``IsRequestHeaderSafe``; every ``Proxy-*`` too): set as extra headers they
#: fail the navigation with net::ERR_INVALID_ARGUMENT and leave a tab the reset cannot prove
#: clean, so the browser would be replaced for a request's mistake.
_REFUSED_BY_CHROMIUM = ("trailer", "te", "upgrade", "cookie2", "keep-alive", "set-cookie")
_METHOD_OVERRIDES = ("x-http-method", "x-http-method-override", "x-method-override")


@dataclass(frozen=True)
class JobOptions:
    """A job's validated options (all optional; None/empty: not asked for).

    ``body`` is bytes; ``headers`` a dict; ``cookies`` a list of CDP ``Network.CookieParam``
    dicts (domain filled in); ``viewport`` ``{"width", "height", "device_scale_factor",
    "mobile"}``; ``screenshot`` ``{"type", "quality", "full_page"}``; ``pdf`` ``{"format",
    "landscape", "print_background"}``; ``settle_ms`` and ``capture_max_bytes`` ints."""

    method: str = "GET"
    body: bytes | None = None
    content_type: str | None = None
    headers: dict = field(default_factory=dict)
    cookies: list = field(default_factory=list)
    user_agent: str | None = None
    viewport: dict | None = None
    locale: str | None = None
    timezone: str | None = None
    wait_until: str = "load"
    settle_ms: int = DEFAULT_SETTLE_MS
    screenshot: dict | None = None
    pdf: dict | None = None
    evaluate: str | None = None
    capture: tuple = ()
    capture_max_bytes: int = DEFAULT_CAPTURE_MAX_BYTES
    cookies_out: bool = False

    @property
    def main_request(self) -> bool:
        """The main request is not a plain GET (method, body)."""
        return self.method != "GET" or self.body is not None

    @property
    def overrides(self) -> bool:
        """Anything applied to the tab before the navigation (undone after the job)."""
        return bool(self.headers or self.cookies or self.user_agent or self.viewport
                    or self.locale or self.timezone or self.main_request)

    @property
    def outputs(self) -> bool:
        """Whether the job asks for any output (then the pool collects them)."""
        return bool(self.screenshot or self.pdf or self.evaluate is not None
                    or self.capture or self.cookies_out)


def _bad(option: str, what: str) -> BadRequest:
    return BadRequest(f"option {option!r}: {what}")


def _text(option: str, value, limit: int = MAX_TEXT, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise _bad(option, f"must be a {'' if empty else 'non-empty '}string, not {_show(value)}")
    if len(value) > limit:
        raise _bad(option, f"must be at most {limit} characters")
    if any(c in value for c in "\r\n\0"):
        raise _bad(option, "must not contain CR, LF or NUL")
    return value


def _int(option: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(option, f"must be an integer {low}..{high}, not {_show(value)}")
    return value


def _bool(option: str, value) -> bool:
    if not isinstance(value, bool):
        raise _bad(option, f"must be true or false, not {_show(value)}")
    return value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _keys(option: str, value, known: tuple) -> dict:
    if not isinstance(value, dict):
        raise _bad(option, f"must be an object, not {_show(value)}")
    unknown = set(value) - set(known)
    if unknown:
        raise _bad(option, f"unknown keys {', '.join(sorted(map(str, unknown)))} (known: {', '.join(known)})")
    return value


def _method(value) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value) or len(value) > 32:
        raise _bad("method", f"must be an HTTP method token such as \"POST\", not {_show(value)}")
    if value.upper() in _FORBIDDEN_METHODS:
        raise _bad("method", f"{value} is not allowed for a page load")
    return value.upper() if value.upper() in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS") else value


def _body(value) -> bytes:
    if not isinstance(value, str):
        raise _bad("body", f"must be the base64 of the bytes, a string, not {_show(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("body", "is not valid base64") from None


def _headers(value) -> dict:
    if not isinstance(value, dict):
        raise _bad("headers", f"must be an object of name -> value strings, not {_show(value)}")
    if len(value) > MAX_HEADERS:
        raise _bad("headers", f"at most {MAX_HEADERS} headers")
    seen = set()
    for name, text in value.items():
        if not _TOKEN.match(name) or len(name) > 256:
            raise _bad("headers", f"{_show(name)} is not a header name (an HTTP token)")
        if name.lower() in _FORBIDDEN_HEADERS:
            raise _bad("headers", f"{name} is set by the browser and cannot be given")
        if name.lower() in _REFUSED_BY_CHROMIUM or name.lower().startswith("proxy-"):
            raise _bad("headers", f"{name} is refused by Chromium (a hop-by-hop, proxy or response header)")
        if name.lower() in _METHOD_OVERRIDES and isinstance(text, str) \
                and any(m.strip().upper() in _FORBIDDEN_METHODS for m in text.split(",")):
            raise _bad("headers", f"{name} must not name {', '.join(_FORBIDDEN_METHODS)} (Chromium refuses it)")
        if name.lower() in seen:
            raise _bad("headers", f"{name} is given twice")
        seen.add(name.lower())
        _text(f"headers.{name}", text, empty=True)
    return dict(value)


def _controls(text: str) -> bool:
    """Whether ``text`` holds a control character (RFC 6265 allows none in a cookie)."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in text)


_COOKIE_KEYS = ("name", "value", "domain", "path", "secure", "httpOnly", "expires", "sameSite")


def _cookies(value, url: str) -> list:
    if not isinstance(value, list):
        raise _bad("cookies", f"must be a list of cookie objects, not {_show(value)}")
    if len(value) > MAX_COOKIES:
        raise _bad("cookies", f"at most {MAX_COOKIES} cookies")
    host = urlsplit(url).hostname
    cookies = []
    for n, item in enumerate(value):
        where = f"cookies[{n}]"
        _keys(where, item, _COOKIE_KEYS)
        name = item.get("name")
        if not isinstance(name, str) or not name or any(c in name for c in ";=,\t ") or _controls(name):
            raise _bad(where, f"'name' must be a non-empty cookie name, not {_show(name)}")
        text = item.get("value")
        if not isinstance(text, str) or ";" in text or _controls(text):
            raise _bad(where, "'value' must be a string without ';' or control characters")
        cookie = {"name": name, "value": text}
        domain = item.get("domain", host)
        if not isinstance(domain, str) or not domain or any(c in domain for c in "/;:@ ") or _controls(domain):
            raise _bad(where, f"'domain' must be a host name, not {_show(domain)}")
        if not domain:
            raise _bad(where, "'domain' is required for a URL without a host")
        cookie["domain"] = domain
        path = item.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in ";\r\n\0"):
            raise _bad(where, f"'path' must start with '/', not {_show(path)}")
        cookie["path"] = path
        for key in ("secure", "httpOnly"):
            if key in item:
                cookie[key] = _bool(f"{where}.{key}", item[key])
        if "expires" in item:
            expires = item["expires"]
            if isinstance(expires, bool) or not isinstance(expires, (int, float)) or expires <= 0:
                raise _bad(where, f"'expires' must be a positive unix time in seconds, not {_show(expires)}")
            cookie["expires"] = float(expires)
        if "sameSite" in item:
            if item["sameSite"] not in SAME_SITE:
                raise _bad(where, f"'sameSite' must be one of {', '.join(SAME_SITE)}, not {_show(item['sameSite'])}")
            if item["sameSite"] == "None" and not cookie.get("secure"):
                raise _bad(where, "'sameSite' None needs 'secure': true (browsers drop it otherwise)")
            cookie["sameSite"] = item["sameSite"]
        cookies.append(cookie)
    return cookies


def _viewport(value) -> dict:
    _keys("viewport", value, ("width", "height", "device_scale_factor", "mobile"))
    for key in ("width", "height"):
        if key not in value:
            raise _bad("viewport", f"{key} is required")
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DIMENSION:
            raise _bad("viewport", f"{key} must be an integer 1..{MAX_DIMENSION}, not {_show(v)}")
    scale = value.get("device_scale_factor", 1)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 10:
        raise _bad("viewport", f"device_scale_factor must be a number in (0, 10], not {_show(scale)}")
    return {"width": value["width"], "height": value["height"], "device_scale_factor": float(scale),
            "mobile": _bool("viewport.mobile", value.get("mobile", False))}


def _switch_or_table(name: str, value, keys: tuple) -> dict | None:
    """An output asked for as ``true`` (its defaults: ``{}``) or as a table of ``keys``;
    None when not asked for (``false``)."""
    if value is False or value is None:
        return None
    value = {} if value is True else value
    _keys(name, value, keys)
    return value


def _screenshot(value) -> dict | None:
    value = _switch_or_table("screenshot", value, ("type", "quality", "full_page"))
    if value is None:
        return None
    kind = value.get("type", "png")
    if kind not in ("png", "jpeg"):
        raise _bad("screenshot", f"type must be \"png\" or \"jpeg\", not {_show(kind)}")
    quality = value.get("quality")
    if quality is not None:
        if kind != "jpeg":
            raise _bad("screenshot", "quality is for type \"jpeg\" only")
        quality = _int("screenshot.quality", quality, 0, 100)
    return {"type": kind, "quality": quality, "full_page": _bool("screenshot.full_page", value.get("full_page", False))}


def _pdf(value) -> dict | None:
    value = _switch_or_table("pdf", value, ("format", "landscape", "print_background"))
    if value is None:
        return None
    paper = value.get("format", "A4")
    if paper not in PAPER:
        raise _bad("pdf", f"format must be one of {', '.join(PAPER)}, not {_show(paper)}")
    return {"format": paper, "landscape": _bool("pdf.landscape", value.get("landscape", False)),
            "print_background": _bool("pdf.print_background", value.get("print_background", False))}


def _capture(value) -> tuple:
    if not isinstance(value, list) or not value:
        raise _bad("capture", f"must be a non-empty list of URL patterns, not {_show(value)}")
    if len(value) > MAX_PATTERNS:
        raise _bad("capture", f"at most {MAX_PATTERNS} patterns")
    for pattern in value:
        _text("capture", pattern, limit=2048)
    return tuple(value)


def _locale(locale) -> str:
    if not isinstance(locale, str) or not _LOCALE.match(locale) or len(locale) > 64:
        raise _bad("locale", f"must be a BCP 47 language tag such as \"de-DE\", not {_show(locale)}")
    return locale


def _timezone(zone) -> str:
    if not isinstance(zone, str) or not _TIMEZONE.match(zone) or len(zone) > 64:
        raise _bad("timezone", f"must be an IANA time zone such as \"Asia/Tokyo\", not {_show(zone)}")
    return zone


def _wait_until(value) -> str:
    if value not in WAIT_UNTIL:
        raise _bad("wait_until", f"must be one of {', '.join(WAIT_UNTIL)}, not {_show(value)}")
    return value


def _evaluate(script) -> str:
    if not isinstance(script, str) or not script.strip():
        raise _bad("evaluate", f"must be a non-empty JavaScript string, not {_show(script)}")
    if len(script) > MAX_SCRIPT or "\0" in script:
        raise _bad("evaluate", f"must be at most {MAX_SCRIPT} characters, without NUL")
    return script.strip()


def _request_body(given: dict, method: str | None) -> dict:
    """``body``, ``content_type`` and the method they imply: like curl --data, a body
    without a method is a POST; a GET or HEAD has none."""
    if "body" not in given:
        if "content_type" in given:
            raise _bad("content_type", "is the type of 'body', which is not given")
        return {}
    body, method = _body(given["body"]), method or "POST"
    if method in ("GET", "HEAD"):
        raise _bad("body", f"a {method} request has no body (set 'method', e.g. \"POST\")")
    content_type = (_text("content_type", given["content_type"], limit=1024) if "content_type" in given
                    else "application/x-www-form-urlencoded")
    return {"body": body, "method": method, "content_type": content_type}


#: Each option's check (value -> the validated value), in the order they are checked;
#: ``cookies`` (which needs the job's URL), ``body`` and ``content_type`` are checked apart.
_CHECKS = {
    "method": _method,
    "headers": _headers,
    "user_agent": lambda v: _text("user_agent", v, limit=1024),
    "viewport": _viewport,
    "locale": _locale,
    "timezone": _timezone,
    "wait_until": _wait_until,
    "settle_ms": lambda v: _int("settle_ms", v, 0, MAX_SETTLE_MS),
    "screenshot": _screenshot,
    "pdf": _pdf,
    "evaluate": _evaluate,
    "capture": _capture,
    "capture_max_bytes": lambda v: _int("capture_max_bytes", v, 0, MAX_CAPTURE_BYTES),
    "cookies_out": lambda v: _bool("cookies_out", v),
}


def validate(options: dict, url: str) -> JobOptions | None:
    """Check the job options of a fetch of ``url`` (the request's ``options`` object, the
    proxy options included, which are ignored here). Returns None when none of
    :data:`OPTIONS` is given. Raises ``BadRequest`` naming the first bad option."""
    given = {k: v for k, v in options.items() if k in OPTIONS and v is not None}
    if not given:
        return None
    out = {name: check(given[name]) for name, check in _CHECKS.items() if name in given}
    if "cookies" in given:
        out["cookies"] = _cookies(given["cookies"], url)
    out.update(_request_body(given, out.get("method")))
    return JobOptions(**out)
