"""Talking to a Selenium Grid 4 over its HTTP API: readiness, Chrome slots, sessions.

The pool's browsers on a Grid are ordinary Remote WebDriver sessions (see browserd.browser);
this module only answers the questions a daemon asks the Grid itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class GridError(RuntimeError):
    """The Grid cannot give us browsers; the message is one line and says why."""


def _get(url: str, timeout: float) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def chrome_slots(grid_url: str, timeout: float = 5.0) -> tuple[int, int]:
    """``(free, total)`` Chrome slots on the Grid's nodes that are UP."""
    try:
        status = _get(grid_url.rstrip("/") + "/status", timeout)["value"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GridError(f"Selenium Grid at {grid_url} is unreachable: {reason}") from None
    free = total = 0
    for node in status.get("nodes", []):
        if node.get("availability") != "UP":
            continue
        for slot in node.get("slots", []):
            if (slot.get("stereotype") or {}).get("browserName") != "chrome":
                continue
            total += 1
            free += slot.get("session") is None
    return free, total


def check_capacity(grid_url: str, needed: int) -> None:
    """Fail with one line unless the Grid has ``needed`` free Chrome slots."""
    free, total = chrome_slots(grid_url)
    if total == 0:
        raise GridError(f"Selenium Grid at {grid_url} has no Chrome slot")
    if free < needed:
        raise GridError(f"Selenium Grid at {grid_url} has {free} free Chrome slots of {total}; "
                        f"{needed} browsers were asked for")


def delete_session(grid_url: str, session_id: str, timeout: float = 5.0) -> bool:
    """End a session from outside (any thread): the node quits its browser."""
    request = urllib.request.Request(f"{grid_url.rstrip('/')}/session/{session_id}", method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError):
        return False
