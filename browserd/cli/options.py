"""``browserd fetch`` job-option flags (issue #14): the flags, their values as client keyword
arguments, the outputs written to files, and ``fetch -i`` input lines with options.

The fetch command (:mod:`.fetch`) calls :func:`add_job_option_flags` (parser),
:func:`job_options_from_args` (before the fetch), :func:`save_outputs` and
:func:`value_replaces_page` (after a single fetch); the ``-i`` downloader (:mod:`.batch`)
calls :func:`read_batch_input`, :func:`item_url` and :func:`save_batch_outputs`.
Values are checked with :func:`browserd_client.options.job_options`, so a bad flag is a
usage error (exit 2) before anything is sent.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import sys

from browserd_client.options import WAIT_UNTIL, job_options

FLAGS_EPILOG = """\
job options (applied by the daemon for every site class, unlike --param):
  --header 'X-Token: abc' --cookie 'sid=42; Domain=example.org; Path=/'
  --data 'user=ann&pw=x' (a form POST), --data-binary @body.json --header
  'Content-Type: application/json', --method PUT
  --viewport 1280x800@2 --locale de-DE --timezone Asia/Tokyo --wait-until networkidle
  --screenshot page.png [--full-page] (page.jpg or --jpeg-quality N: JPEG), --pdf page.pdf
  --eval 'return document.title' prints its JSON value on stdout (the page then goes only
  to -o FILE); --capture '*/api/*' --capture-out responses.json; --cookies-out cookies.json
  with -i: outputs are saved next to each page (<page>.png, <page>.pdf, <page>.responses.json),
  values and cookies go to index.jsonl; input lines may be JSON objects
  {"url", "site"?, "params"?, "options"?: {job options by their client names}}, which
  replace the command line's site, params and (key by key) options for that URL."""


def add_job_option_flags(parser: argparse.ArgumentParser) -> None:
    """Add the job-option flags of ``browserd fetch`` to ``parser`` (an argument group)."""
    g = parser.add_argument_group("job options (see below)")
    g.add_argument("--method", metavar="METHOD", help="HTTP method of the main request (default GET, "
                   "POST with --data)")
    g.add_argument("--data", metavar="DATA", help="request body: text, or @FILE (newlines removed, as curl); "
                   "implies POST; Content-Type application/x-www-form-urlencoded unless --header says otherwise")
    g.add_argument("--data-binary", metavar="DATA", help="request body: text, or @FILE sent byte for byte")
    g.add_argument("--header", action="append", metavar="NAME:VALUE", help="extra request header (repeatable)")
    g.add_argument("--cookie", action="append", metavar="NAME=VALUE[;Domain=D;Path=P;Secure;HttpOnly;SameSite=S]",
                   help="cookie set before the navigation (repeatable; domain: the URL's host by default)")
    g.add_argument("--user-agent", metavar="UA", help="User-Agent (and navigator.userAgent)")
    g.add_argument("--viewport", metavar="WxH[@SCALE]", help="window size in CSS pixels, e.g. 1280x800@2")
    g.add_argument("--locale", metavar="BCP47", help="navigator.language, Intl and Accept-Language, e.g. de-DE")
    g.add_argument("--timezone", metavar="IANA", help="time zone, e.g. Asia/Tokyo")
    g.add_argument("--wait-until", choices=WAIT_UNTIL, help="when the page counts as loaded (default load)")
    g.add_argument("--settle-ms", type=int, metavar="MS", help="quiet window of --wait-until settled (default 300)")
    g.add_argument("--screenshot", nargs="?", const="", metavar="FILE", help="save a screenshot (PNG; JPEG for "
                   ".jpg/.jpeg or with --jpeg-quality); with -i: no FILE, saved next to each page")
    g.add_argument("--full-page", action="store_true", help="screenshot the whole page, not the viewport")
    g.add_argument("--jpeg-quality", type=int, metavar="0-100", help="JPEG screenshot quality")
    g.add_argument("--pdf", nargs="?", const="", metavar="FILE", help="save the page printed as PDF "
                   "(with -i: no FILE)")
    g.add_argument("--pdf-format", choices=("A4", "Letter", "Legal", "A3", "A5", "Tabloid"), help="PDF paper size")
    g.add_argument("--eval", metavar="JS", help="JS expression or function body (return ...): print its JSON value")
    g.add_argument("--capture", action="append", metavar="PATTERN",
                   help="URL glob of responses to bring back, e.g. '*/api/*' (repeatable)")
    g.add_argument("--capture-out", metavar="FILE", help="write the captured responses here as JSON")
    g.add_argument("--cookies-out", nargs="?", const="", metavar="FILE",
                   help="write the browser's cookies at the end of the job here as JSON (with -i: no FILE)")


def _read_data(value: str, binary: bool) -> bytes:
    if not value.startswith("@"):
        return value.encode("utf-8")
    path = value[1:]
    with (open(path, "rb") if path != "-" else contextlib.nullcontext(sys.stdin.buffer)) as f:
        data = f.read()
    return data if binary else data.replace(b"\r", b"").replace(b"\n", b"")


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` -> (name, value); raises ValueError."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"--header {text!r} is not NAME:VALUE")
    return name.strip(), value.strip()


_COOKIE_FLAGS = {"secure": "secure", "httponly": "httpOnly"}
_COOKIE_ATTRS = {"domain": "domain", "path": "path", "samesite": "sameSite", "expires": "expires"}


def parse_cookie(text: str) -> dict:
    """``"sid=42; Domain=example.org; Path=/; Secure; HttpOnly; SameSite=Lax; Expires=UNIX_S"``
    -> a wire cookie dict; raises ValueError."""
    first, *attrs = [part.strip() for part in text.split(";")]
    name, sep, value = first.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--cookie {text!r} does not start with NAME=VALUE")
    cookie: dict = {"name": name.strip(), "value": value.strip()}
    for attr in filter(None, attrs):
        key, sep, val = attr.partition("=")
        key = key.strip().lower()
        if not sep and key in _COOKIE_FLAGS:
            cookie[_COOKIE_FLAGS[key]] = True
        elif sep and key in _COOKIE_ATTRS:
            val = val.strip()
            if key == "samesite":
                val = val.capitalize()
            elif key == "expires":
                if not re.fullmatch(r"\d+", val):
                    raise ValueError(f"--cookie {text!r}: Expires must be unix seconds")
                val = int(val)
            cookie[_COOKIE_ATTRS[key]] = val
        else:
            raise ValueError(f"--cookie {text!r}: unknown attribute {attr!r} (known: Domain, Path, Secure, "
                             f"HttpOnly, SameSite, Expires)")
    return cookie


def parse_viewport(text: str) -> dict:
    """``"1280x800"`` or ``"1280x800@2"`` -> a wire viewport dict; raises ValueError."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*(?:@\s*(\d+(?:\.\d+)?))?\s*", text)
    if not m:
        raise ValueError(f"--viewport {text!r} is not WIDTHxHEIGHT[@SCALE], e.g. 1280x800@2")
    viewport = {"width": int(m[1]), "height": int(m[2])}
    if m[3]:
        scale = float(m[3])
        viewport["device_scale_factor"] = int(scale) if scale.is_integer() else scale
    return viewport


def _screenshot(args):
    if args.screenshot is None:
        if args.full_page or args.jpeg_quality is not None:
            raise ValueError("--full-page and --jpeg-quality need --screenshot")
        return None
    name = args.screenshot.lower()
    if name and not name.endswith((".png", ".jpg", ".jpeg")):
        raise ValueError(f"--screenshot {args.screenshot}: the file must end in .png, .jpg or .jpeg "
                         "(the image's type)")
    jpeg = args.jpeg_quality is not None or name.endswith((".jpg", ".jpeg"))
    shot: dict = {"type": "jpeg" if jpeg else "png"}
    if args.jpeg_quality is not None:
        shot["quality"] = args.jpeg_quality
    if args.full_page:
        shot["full_page"] = True
    return shot


def job_options_from_args(args: argparse.Namespace) -> dict:
    """The job options of a ``browserd fetch`` command line as client keyword arguments
    (``Client.fetch(url, **them)``), checked. Raises ValueError or TypeError (a usage
    error) for a malformed or inconsistent flag, OSError for a ``@FILE`` not readable."""
    batch = getattr(args, "input", None) is not None
    for flag in ("screenshot", "pdf", "cookies_out"):
        value = getattr(args, flag)
        if value is not None and bool(value) == batch:
            dashed = "--" + flag.replace("_", "-")
            raise ValueError(f"with -i, {dashed} takes no FILE (each page's is saved next to it)" if batch
                             else f"{dashed} needs a FILE")
    if args.capture and not batch and not args.capture_out and not args.json:
        raise ValueError("--capture needs --capture-out FILE (or --json)")
    if args.capture_out and not args.capture:
        raise ValueError("--capture-out needs --capture PATTERN")
    if args.data is not None and args.data_binary is not None:
        raise ValueError("give either --data or --data-binary")
    kwargs: dict = {}
    if args.data is not None:
        kwargs["data"] = _read_data(args.data, binary=False)
    if args.data_binary is not None:
        kwargs["data"] = _read_data(args.data_binary, binary=True)
    # A Content-Type header becomes the body's content_type (job_options); without one the
    # daemon sends application/x-www-form-urlencoded, as curl does.
    headers = dict(parse_header(h) for h in args.header or [])
    kwargs.update(
        method=args.method, headers=headers or None,
        cookies=[parse_cookie(c) for c in args.cookie] if args.cookie else None,
        user_agent=args.user_agent, viewport=parse_viewport(args.viewport) if args.viewport else None,
        locale=args.locale, timezone=args.timezone, wait_until=args.wait_until, settle_ms=args.settle_ms,
        screenshot=_screenshot(args), evaluate=args.eval, capture=args.capture,
        pdf=({"format": args.pdf_format} if args.pdf_format else True) if args.pdf is not None else None,
        cookies_out=True if args.cookies_out is not None else None,
    )
    if args.settle_ms is not None and args.wait_until != "settled":
        raise ValueError("--settle-ms is the quiet window of --wait-until settled, which is not given")
    if args.pdf_format and args.pdf is None:
        raise ValueError("--pdf-format needs --pdf")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    job_options(**kwargs)   # the checks the client makes, now, as a usage error
    return kwargs


def _write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a reader never sees half."""
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.replace(path + ".part", path)


def _json_bytes(value) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=1, default=_bytes_as_base64) + "\n").encode("utf-8")


def _bytes_as_base64(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def responses_json(responses: list) -> list:
    """Captured responses as the wire has them (a bytes body back to base64)."""
    return [dict(r, body=_bytes_as_base64(r["body"])) if isinstance(r.get("body"), bytes) else r
            for r in responses]


def save_outputs(args: argparse.Namespace, result) -> dict:
    """Write the outputs of a single fetch to the files its flags name (screenshot, PDF,
    captured responses, cookies), log one line each to stderr, and return the fields for
    the ``--json`` record (``value``, ``responses``, ``responses_dropped``, ``cookies`` and
    the files written). Raises OSError when a file cannot be written."""
    record: dict = {}
    written = {}
    for flag, data in (("screenshot", result.screenshot), ("pdf", result.pdf)):
        path = getattr(args, flag)
        if path and data is not None:
            _write(path, data)
            written[flag] = path
    if args.capture_out and result.responses is not None:
        _write(args.capture_out, _json_bytes(responses_json(result.responses)))
        written["responses"] = args.capture_out
    if args.cookies_out and result.cookies is not None:
        _write(args.cookies_out, _json_bytes(result.cookies))
        written["cookies"] = args.cookies_out
    for what, path in written.items():
        print(f"{what} -> {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)
    for flag, data in (("screenshot", result.screenshot), ("pdf", result.pdf)):
        if getattr(args, flag) and data is None:
            print(f"browserd: the daemon sent no {flag} (it may be older than this client)", file=sys.stderr)
    if args.eval is not None:
        record["value"] = result.value
        if not args.json and not value_replaces_page(args):   # the page went to -o FILE
            print(json.dumps(result.value, ensure_ascii=False), flush=True)
    if args.capture:
        record["responses"] = responses_json(result.responses or [])
        record["responses_dropped"] = result.responses_dropped
    if args.cookies_out is not None:
        record["cookies"] = result.cookies
    if written:
        record["files"] = written
    return record


def value_replaces_page(args: argparse.Namespace) -> bool:
    """Whether stdout gets ``--eval``'s JSON value instead of the page (no ``-o``, no ``--json``)."""
    return args.eval is not None and not args.json and not (args.output and args.output != "-")


def read_batch_input(path: str) -> list:
    """The items of a ``fetch -i`` input file, for ``Client.map``: a plain line is a URL (it
    gets the command line's site, params and options); a line starting with ``{`` is a JSON
    object ``{"url", "site"?, "params"?, "options"?}``. Blank lines and ``#`` comments are
    skipped; a URL listed twice is fetched once (the first line). Raises ValueError naming
    the line for a malformed one, OSError when the file cannot be read."""
    with (open(path, encoding="utf-8") if path != "-" else contextlib.nullcontext(sys.stdin)) as f:
        lines = f.read().splitlines()
    items: dict[str, object] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            items.setdefault(line, line)
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not a JSON object: {exc}") from None
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise ValueError(f"{path}:{number}: a JSON line needs a \"url\" string")
        unknown = set(item) - {"url", "site", "params", "options"}
        if unknown:
            raise ValueError(f"{path}:{number}: unknown keys {', '.join(sorted(unknown))} "
                             f"(known: url, site, params, options)")
        if not isinstance(item.get("params", {}), dict) or not isinstance(item.get("options", {}), dict):
            raise ValueError(f"{path}:{number}: \"params\" and \"options\" must be JSON objects")
        try:
            job_options(**item.get("options", {}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        items.setdefault(item["url"], item)
    return list(items.values())


def item_url(item) -> str:
    """The URL of a :func:`read_batch_input` item."""
    return item if isinstance(item, str) else item["url"]


def save_batch_outputs(result, page_path: str) -> dict:
    """Save a batch page's outputs next to ``page_path`` (``<stem>.png``/``.jpg``, ``.pdf``,
    ``.responses.json``) and return the fields for its index.jsonl record (file names,
    ``value``, ``cookies``, ``responses_dropped``)."""
    stem = os.path.splitext(page_path)[0]
    record: dict = {}
    if result.screenshot is not None:
        path = stem + (".jpg" if result.screenshot_type == "jpeg" else ".png")
        _write(path, result.screenshot)
        record["screenshot"] = os.path.basename(path)
    if result.pdf is not None:
        _write(stem + ".pdf", result.pdf)
        record["pdf"] = os.path.basename(stem + ".pdf")
    if result.responses is not None:
        _write(stem + ".responses.json", _json_bytes(responses_json(result.responses)))
        record.update(responses=os.path.basename(stem + ".responses.json"),
                      responses_dropped=result.responses_dropped)
    if result.value is not None:
        record["value"] = result.value
    if result.cookies is not None:
        record["cookies"] = result.cookies
    return record


__all__ = ["FLAGS_EPILOG", "add_job_option_flags", "job_options_from_args", "save_outputs", "value_replaces_page",
           "read_batch_input", "item_url", "save_batch_outputs", "parse_cookie", "parse_header", "parse_viewport"]
