"""Escape values that come from clients before they reach a log line.

A URL, a site name, an op or an error text quoting them is attacker-chosen: a CR or LF
inside would start a new, forged log line, and other control characters can hide text
or drive the terminal of whoever reads the log. :func:`safe` returns a printable,
single-line, bounded form: control characters (C0, DEL, C1) and the Unicode line and
paragraph separators become ``\\xNN``/``\\uNNNN`` escapes, a backslash is doubled so an
escape cannot be faked, and the text is cut at ``limit`` characters.
"""

from __future__ import annotations

import re

#: Characters that end a line or are invisible/controlling in a log viewer.
_UNSAFE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match) -> str:
    ch = match.group()
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value, limit: int = 300) -> str:
    """``value`` as one printable log-safe line of at most ``limit`` characters (+ a marker)."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value[: limit * 4]).decode("utf-8", "backslashreplace")
    else:
        text = str(value)
    cut = len(text) > limit
    text = _UNSAFE.sub(_escape, text[:limit])
    return text + "...[cut]" if cut else text
