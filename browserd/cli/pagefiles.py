"""A fetched page as a file: UTF-8 HTML that says so, or the bytes of a document that is
not HTML with a fitting extension; and a stable file name for a URL."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from urllib.parse import urlsplit


def as_utf8_html(source: str) -> str:
    """The rendered source as saved: it is written in UTF-8, so it must say so. Any
    ``<meta charset>`` (or http-equiv Content-Type) is rewritten to UTF-8; a page that
    declares none gets one at the start of its <head>."""
    meta = re.compile(r"<meta\b[^>]*?(?:charset\s*=|http-equiv\s*=\s*[\"']?content-type)[^>]*>", re.I)
    fixed, n = meta.subn('<meta charset="utf-8">', source)
    if n:
        return fixed
    head = re.search(r"<head\b[^>]*>", source, re.I)
    if head:
        return source[:head.end()] + '<meta charset="utf-8">' + source[head.end():]
    return '<meta charset="utf-8">' + source


#: File extensions of bodies that are not HTML, by MIME type.
_EXTENSIONS = {"application/json": ".json", "text/csv": ".csv", "text/plain": ".txt", "application/pdf": ".pdf",
               "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
               "image/svg+xml": ".svg", "application/xml": ".xml", "text/xml": ".xml"}


def extension(result) -> str:
    """The file extension of a fetch result: ``.html`` for a rendered page, else by MIME
    type (``.bin`` when unknown)."""
    if result.body is None:
        return ".html"
    kind = (result.mime_type or "").split(";")[0].strip().lower()
    return _EXTENSIONS.get(kind) or mimetypes.guess_extension(kind) or ".bin"


def page_file(url: str) -> str:
    """A stable, safe file name for a URL: sha1 prefix, then its host and path, readable."""
    parts = urlsplit(url)
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{parts.hostname or ''}{parts.path}").strip("._")[:80]
    return f"{hashlib.sha1(url.encode('utf-8')).hexdigest()[:12]}-{readable or 'page'}"
