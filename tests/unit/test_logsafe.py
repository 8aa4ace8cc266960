"""safe(): what a client sends can never become a second log line or a terminal command."""

from __future__ import annotations

import pytest

from browserd.logsafe import safe


@pytest.mark.parametrize("text", [
    "a\r\n2099-01-01 00:00:00,000 CRITICAL forged", "a\nb", "a\rb", "a\x00b", "a\x1b[2Jb", "a\x7fb",
    "a\x85b", "a\u2028b", "a\u2029b", "a\x0bb\x0cc\x1cd\x1de\x1ef",
])
def test_no_control_character_or_line_break_survives(text):
    out = safe(text)
    assert len(out.splitlines()) == 1  # str.splitlines knows every line break there is
    assert all(c.isprintable() for c in out)


def test_escapes_are_readable_and_unambiguous():
    assert safe("x\r\ny") == "x\\x0d\\x0ay"
    assert safe("\u2028") == "\\u2028"
    assert safe("a\\x0d") == "a\\\\x0d"  # a literal backslash cannot fake an escape
    assert safe("https://example.org/ä?q=1") == "https://example.org/ä?q=1"  # printable: untouched


def test_long_values_are_cut_and_marked():
    assert safe("u" * 1000, 10) == "u" * 10 + "...[cut]"
    assert safe("u" * 10, 10) == "u" * 10


def test_non_strings_and_bytes():
    assert safe(None) == "None"
    assert safe(["a\nb"]) == "['a\\\\nb']"  # repr already escaped it; the backslash is doubled
    assert safe(b"ab\r\n") == "ab\\x0d\\x0a"
    assert safe(ValueError("bad\nvalue")) == "bad\\x0avalue"
