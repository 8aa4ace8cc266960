"""Job options: what one fetch asks the daemon for besides the page (issue #14).

Job options are applied by the daemon for every site class; a site's own ``params`` are
the site class's business. The clients keep them apart:

    client.fetch(url, params={"wait_for": "#x"},          # site params: a dict
                 method="POST", data={"user": "ann"},      # job options: keyword arguments
                 screenshot={"type": "jpeg", "quality": 80, "full_page": True},
                 evaluate="return document.title")

:func:`job_options` checks the keyword arguments and builds the wire ``options`` object
(see ``/work/s5/schema.md``, the README's options table); :func:`split_fetch_kwargs` is the
one place a fetch's keyword arguments are split into site params and job options;
:func:`decode_outputs` turns a reply's outputs into Python values (base64 into bytes).
Stdlib only.
"""

from __future__ import annotations

import base64
import math
import re
from urllib.parse import urlencode

#: Job option keyword arguments, in the order of the wire schema. ``data`` becomes the wire
#: ``body`` (base64) and ``content_type``; the others keep their wire names.
JOB_OPTION_NAMES = (
    "method", "data", "content_type", "headers", "cookies", "user_agent", "viewport", "locale",
    "timezone", "wait_until", "settle_ms", "screenshot", "pdf", "evaluate", "capture",
    "capture_max_bytes", "cookies_out", "proxy", "proxy_pool",
)
WAIT_UNTIL = ("load", "domcontentloaded", "networkidle", "settled")
PDF_FORMATS = ("A4", "Letter", "Legal", "A3", "A5", "Tabloid")
SCREENSHOT_TYPES = ("png", "jpeg")
COOKIE_KEYS = ("name", "value", "domain", "path", "secure", "httpOnly", "expires", "sameSite")
SAME_SITE = ("Strict", "Lax", "None")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")   # RFC 9110 token (methods, header names)
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def _fail(option: str, problem: str, kind: type = ValueError):
    return kind(f"option {option!r}: {problem}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(option: str, value, low: int, high: int | None = None, what: str = "") -> int:
    name = f"{what} " if what else ""
    if not _is_int(value):
        raise _fail(option, f"{name}must be an integer, not {value!r}", TypeError)
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise _fail(option, f"{name}must be {bound}, not {value}")
    return value


def _bool(option: str, value, what: str = "") -> bool:
    if not isinstance(value, bool):
        raise _fail(option, f"{what + ' ' if what else ''}must be true or false, not {value!r}", TypeError)
    return value


def _str(option: str, value, *, empty: bool = False, script: bool = False) -> str:
    """A string option; only a ``script`` (JS source) may hold CR, LF or NUL."""
    if not isinstance(value, str):
        raise _fail(option, f"must be a string, not {type(value).__name__}", TypeError)
    if not empty and not value:
        raise _fail(option, "must not be empty")
    if not script and _BAD_VALUE.search(value):
        raise _fail(option, "must not contain CR, LF or NUL")
    return value


def _keys(option: str, value: dict, known) -> None:
    unknown = set(value) - set(known)
    if unknown:
        raise _fail(option, f"unknown keys {', '.join(sorted(map(str, unknown)))} (known: {', '.join(known)})",
                    TypeError)


def _method(value) -> str:
    value = _str("method", value)
    if not _TOKEN.match(value):
        raise _fail("method", f"{value!r} is not an HTTP method")
    return value.upper()


def _body(data) -> tuple[bytes, str | None]:
    """The body bytes of ``data=`` and the content type it implies (None: not implied)."""
    if isinstance(data, dict) or (isinstance(data, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in data)):
        return urlencode(data, doseq=True).encode("ascii"), FORM_CONTENT_TYPE
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), None
    raise _fail("data", f"must be bytes, str or a dict (a form), not {type(data).__name__}", TypeError)


def _headers(value) -> dict:
    if not isinstance(value, dict):
        raise _fail("headers", f"must be a dict of str to str, not {type(value).__name__}", TypeError)
    out = {}
    for name, v in value.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise _fail("headers", f"{name!r} is not an HTTP header name")
        if not isinstance(v, str):
            raise _fail("headers", f"the value of {name!r} must be a string, not {type(v).__name__}", TypeError)
        if _BAD_VALUE.search(v):
            raise _fail("headers", f"the value of {name!r} must not contain CR, LF or NUL")
        out[name] = v
    return out


def _cookie(c) -> dict:
    if not isinstance(c, dict):
        raise _fail("cookies", f"each cookie must be a dict, not {type(c).__name__}", TypeError)
    _keys("cookies", c, COOKIE_KEYS)
    for key in ("name", "value"):
        if key not in c:
            raise _fail("cookies", f"a cookie needs a {key!r}", TypeError)
    out = {"name": _str("cookies", c["name"]), "value": _str("cookies", c["value"], empty=True)}
    for key in ("domain", "path"):
        if c.get(key) is not None:
            out[key] = _str("cookies", c[key])
    for key in ("secure", "httpOnly"):
        if c.get(key) is not None:
            out[key] = _bool("cookies", c[key], key)
    if c.get("expires") is not None:
        if isinstance(c["expires"], bool) or not isinstance(c["expires"], (int, float)):
            raise _fail("cookies", f"expires must be unix seconds, not {c['expires']!r}", TypeError)
        out["expires"] = c["expires"]
    if c.get("sameSite") is not None:
        if c["sameSite"] not in SAME_SITE:
            raise _fail("cookies", f"sameSite must be one of {', '.join(SAME_SITE)}, not {c['sameSite']!r}")
        out["sameSite"] = c["sameSite"]
    return out


def _cookies(value) -> list:
    """A list of cookie dicts, or a dict ``{name: value}`` (cookies of the job URL's host)."""
    if isinstance(value, dict):
        value = [{"name": k, "value": v} for k, v in value.items()]
    if not isinstance(value, (list, tuple)):
        raise _fail("cookies", f"must be a list of cookie dicts or a dict of name to value, not "
                               f"{type(value).__name__}", TypeError)
    return [_cookie(c) for c in value]


def _viewport(value) -> dict:
    """``{"width", "height", "device_scale_factor"?, "mobile"?}`` or ``(width, height)``."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = {"width": value[0], "height": value[1]}
    if not isinstance(value, dict):
        raise _fail("viewport", f"must be a dict or a (width, height) pair, not {value!r}", TypeError)
    _keys("viewport", value, ("width", "height", "device_scale_factor", "mobile"))
    if "width" not in value or "height" not in value:
        raise _fail("viewport", "needs width and height", TypeError)
    out = {"width": _int("viewport", value["width"], 1, 10000, "width"),
           "height": _int("viewport", value["height"], 1, 10000, "height")}
    scale = value.get("device_scale_factor")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise _fail("viewport", f"device_scale_factor must be a number, not {scale!r}", TypeError)
        if not (math.isfinite(scale) and 0 < scale <= 10):
            raise _fail("viewport", f"device_scale_factor must be above 0 and at most 10, not {scale}")
        out["device_scale_factor"] = scale
    if value.get("mobile") is not None:
        out["mobile"] = _bool("viewport", value["mobile"], "mobile")
    return out


def _choice(option: str, value, choices) -> str:
    if value not in choices:
        raise _fail(option, f"must be one of {', '.join(choices)}, not {value!r}")
    return value


def _screenshot(value):
    """True, ``"png"``/``"jpeg"``, or ``{"type", "quality"?, "full_page"?}``."""
    if value is True:
        return True
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise _fail("screenshot", f"must be true, 'png', 'jpeg' or a dict, not {value!r}", TypeError)
    _keys("screenshot", value, ("type", "quality", "full_page"))
    out = {"type": _choice("screenshot", value.get("type", "png"), SCREENSHOT_TYPES)}
    if value.get("quality") is not None:
        if out["type"] != "jpeg":
            raise _fail("screenshot", "quality is for type 'jpeg' only")
        out["quality"] = _int("screenshot", value["quality"], 0, 100, "quality")
    if value.get("full_page") is not None:
        out["full_page"] = _bool("screenshot", value["full_page"], "full_page")
    return out


def _pdf(value):
    """True or ``{"format"?, "landscape"?, "print_background"?}``."""
    if value is True:
        return True
    if not isinstance(value, dict):
        raise _fail("pdf", f"must be true or a dict, not {value!r}", TypeError)
    _keys("pdf", value, ("format", "landscape", "print_background"))
    out = {}
    if value.get("format") is not None:
        out["format"] = _choice("pdf", value["format"], PDF_FORMATS)
    for key in ("landscape", "print_background"):
        if value.get(key) is not None:
            out[key] = _bool("pdf", value[key], key)
    return out


def _capture(value) -> list:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail("capture", f"must be a URL pattern or a non-empty list of them, not {value!r}", TypeError)
    return [_str("capture", p) for p in value]


def _request(given: dict) -> dict:
    """The wire ``method``, ``body``, ``content_type`` and ``headers`` of the given job
    options (see :func:`job_options`)."""
    out: dict = {}
    if "method" in given:
        out["method"] = _method(given["method"])
    headers = _headers(given["headers"]) if "headers" in given else {}
    content_type = given.get("content_type")
    if "data" in given:
        body, implied = _body(given["data"])
        header_type = next((headers.pop(k) for k in list(headers) if k.lower() == "content-type"), None)
        if content_type is not None and header_type is not None and header_type != content_type:
            raise _fail("content_type", f"{content_type!r} differs from the Content-Type header {header_type!r}")
        content_type = content_type or header_type or implied
        method = out.setdefault("method", "POST")
        if method in ("GET", "HEAD"):
            raise _fail("data", f"a body needs a method other than GET or HEAD, not {method}")
        out["body"] = base64.b64encode(body).decode("ascii")
    elif content_type is not None:
        raise _fail("content_type", "is the type of data=, which is not given")
    if content_type is not None:
        out["content_type"] = _str("content_type", content_type)
    if headers:
        out["headers"] = headers
    return out


def job_options(**kwargs) -> dict:
    """The wire ``options`` object of a fetch's job-option keyword arguments.

    Accepts the names of :data:`JOB_OPTION_NAMES`; a value of None (or False for
    ``screenshot``/``pdf``/``cookies_out``) is left out, so the daemon's default applies.
    ``data``: bytes or str (sent as they are) or a dict / list of pairs (a form,
    urlencoded, ``content_type`` ``application/x-www-form-urlencoded``); it becomes the
    base64 ``body``, and implies ``method="POST"`` unless a method is given. A
    ``Content-Type`` in ``headers`` becomes the body's ``content_type``. ``cookies``: a
    list of cookie dicts or ``{name: value}``; ``viewport``: a dict or ``(width, height)``;
    ``screenshot``: True, ``"png"``, ``"jpeg"`` or a dict; ``capture``: a pattern or a list.

    Raises TypeError for an unknown name or a value of the wrong type and ValueError for
    a value out of range, each naming the option. The daemon checks everything again
    (``bad_request``); this only fails earlier, with a traceback at the caller.
    """
    unknown = set(kwargs) - set(JOB_OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown job options: {', '.join(sorted(unknown))} (known: {', '.join(JOB_OPTION_NAMES)})")
    given = {k: v for k, v in kwargs.items() if v is not None and v is not False}
    out = _request(given)
    if "cookies" in given:
        out["cookies"] = _cookies(given["cookies"])
    for name in ("user_agent", "locale", "timezone", "evaluate", "proxy", "proxy_pool"):
        if name in given:
            out[name] = _str(name, given[name], script=name == "evaluate")
    if "viewport" in given:
        out["viewport"] = _viewport(given["viewport"])
    if "wait_until" in given:
        out["wait_until"] = _choice("wait_until", given["wait_until"], WAIT_UNTIL)
    if "settle_ms" in given:
        out["settle_ms"] = _int("settle_ms", given["settle_ms"], 0, 60_000)  # the daemon's MAX_SETTLE_MS
    if "screenshot" in given:
        out["screenshot"] = _screenshot(given["screenshot"])
    if "pdf" in given:
        out["pdf"] = _pdf(given["pdf"])
    if "capture" in given:
        out["capture"] = _capture(given["capture"])
    if "capture_max_bytes" in given:
        out["capture_max_bytes"] = _int("capture_max_bytes", given["capture_max_bytes"], 0)
    if "cookies_out" in given:
        out["cookies_out"] = _bool("cookies_out", given["cookies_out"])
    return out


def split_fetch_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """(site params, wire job options) of a fetch's keyword arguments.

    ``params=`` (a dict) holds the site params; the names of :data:`JOB_OPTION_NAMES` are
    job options (:func:`job_options`); ``options=`` (a dict of wire options, the form of
    earlier versions) is merged under them. Any other keyword is a site param too (the
    form of earlier versions, e.g. ``fetch(url, wait_for="#x")``); the daemon rejects a
    site param the site class does not take, so a misspelt option fails there. Raises
    TypeError when a name is given twice or ``params``/``options`` is not a dict.
    """
    kwargs = dict(kwargs)
    params = kwargs.pop("params", None)
    wire = kwargs.pop("options", None)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of site params, not {type(params).__name__}")
    if wire is None:
        wire = {}
    if not isinstance(wire, dict):
        raise TypeError(f"options must be a dict of wire job options, not {type(wire).__name__}")
    chosen = {k: kwargs.pop(k) for k in JOB_OPTION_NAMES if k in kwargs}
    twice = set(kwargs) & set(params)
    if twice:
        raise TypeError(f"site params given twice (as keywords and in params=): {', '.join(sorted(twice))}")
    options = job_options(**chosen)
    twice = set(options) & set(wire)
    if twice:
        raise TypeError(f"job options given twice (as keywords and in options=): {', '.join(sorted(twice))}")
    return {**params, **kwargs}, {**wire, **options}


def map_item(item, site: str, kwargs: dict) -> tuple[str, str, dict]:
    """(url, site, fetch keyword arguments) of one item of a ``map``: a URL string takes
    the call's ``site`` and ``kwargs``; a dict ``{"url", "site"?, "params"?, "options"?}``
    replaces the call's site, its site params (``params``, wholesale) and, key by key, its
    job options (``options``: job option keyword arguments, e.g. ``{"method": "POST",
    "data": {...}}``). Raises TypeError for an item of another shape."""
    if isinstance(item, str):
        return item, site, kwargs
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        raise TypeError(f"a map item must be a URL or a dict with a 'url', not {item!r}")
    unknown = set(item) - {"url", "site", "params", "options"}
    if unknown:
        raise TypeError(f"a map item has unknown keys {', '.join(sorted(unknown))} (known: url, site, params, options)")
    merged = {k: v for k, v in kwargs.items() if k in JOB_OPTION_NAMES or k == "options"}
    if "params" in item:
        merged["params"] = item["params"]
    else:
        merged["params"] = {**(kwargs.get("params") or {}),
                            **{k: v for k, v in kwargs.items() if k not in merged and k != "params"}}
    options = item.get("options") or {}
    if not isinstance(options, dict):
        raise TypeError(f"the options of a map item must be a dict, not {type(options).__name__}")
    merged.update(options)
    return item["url"], item.get("site") or site, merged


def _b64(value) -> bytes | None:
    return base64.b64decode(value) if isinstance(value, str) else None


def decode_outputs(result: dict) -> dict:
    """The outputs of a fetch reply's result, as Python values (keys absent from the reply
    decode to None):

    - ``screenshot``: bytes (PNG or JPEG; ``screenshot_type`` says which);
    - ``pdf``: bytes;
    - ``value``: the JSON value of ``evaluate`` (None also when it returned null);
    - ``responses``: list of dicts ``{url, status, headers, mime_type, body, body_base64,
      size, truncated}`` with ``body`` as str for text and bytes where the reply had base64;
      ``responses_dropped``: int, matching responses beyond the daemon's count cap;
    - ``cookies``: list of cookie dicts (the wire keys).
    """
    shot = result.get("screenshot") if isinstance(result.get("screenshot"), dict) else {}
    pdf = result.get("pdf") if isinstance(result.get("pdf"), dict) else {}
    responses = result.get("responses")
    if isinstance(responses, list):
        responses = [dict(r, body=_b64(r.get("body")) or b"") if r.get("body_base64") else dict(r)
                     for r in responses if isinstance(r, dict)]
    else:
        responses = None
    return {"screenshot": _b64(shot.get("base64")), "screenshot_type": shot.get("type"),
            "pdf": _b64(pdf.get("base64")), "value": result.get("value"), "responses": responses,
            "responses_dropped": int(result.get("responses_dropped") or 0), "cookies": result.get("cookies")}


__all__ = ["JOB_OPTION_NAMES", "WAIT_UNTIL", "PDF_FORMATS", "job_options", "split_fetch_kwargs", "map_item",
           "decode_outputs"]
