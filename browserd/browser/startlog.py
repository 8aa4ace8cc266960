"""What a browser that failed to start said: the last line of a log for the error, and
the tail of chromedriver's logs for the daemon log (its working dir is deleted next)."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def log_tail(path: str) -> str:
    """The last line of the file at ``path`` ("(no output)" when empty, "(no log)" when
    unreadable)."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"
    except OSError:
        return "(no log)"


def keep_start_output(browser_id: str, workdir: str | None, max_bytes: int = 16384) -> None:
    """A failed start: the last ``max_bytes`` of chromedriver's log and of its and
    Chromium's output go to the daemon log (not the terminal) before ``workdir`` is deleted."""
    for name in ("chromedriver.out", "chromedriver.log") if workdir else ():
        try:
            with open(os.path.join(workdir, name), "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - max_bytes))
                text = f.read().decode("utf-8", "replace").strip()
        except OSError:
            continue
        logger.error("browser=%s failed to start; its %s ends:\n%s", browser_id, name, text or "(empty)",
                     extra={"log_only": True})
