"""The daemon's logging: a private log file (``O_NOFOLLOW``, 0600 or 0640 to the group,
reopened after rotation) or stderr in the foreground, and closing every handler before
the fork (DaemonContext closes their descriptors).
"""

from __future__ import annotations

import logging
import logging.handlers
import os

from . import statedir


LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """The log file, (re)opened without following a symlink and created 0600 (0640 to
    ``gid``) whatever the umask; reopened after rotation like WatchedFileHandler."""

    def __init__(self, filename: str, gid: int | None = None):
        self.gid = gid
        super().__init__(filename, encoding="utf-8")

    def _open(self):
        fd = statedir.open_file(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.gid)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def close_logging() -> None:
    """Close every log handler. Called right before daemonizing: DaemonContext closes
    their file descriptors, and a handler closed later would close whatever file or
    socket has reused the number by then."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def configure_logging(config, mode: str) -> None:
    """``prepare``: the log file and warnings on the terminal (start-up in the CLI);
    ``daemon``: the log file only; ``foreground``: stderr (the journal), or the log
    file when one is configured."""
    close_logging()
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    if mode == "foreground" and not config.log_file:
        handlers.append(logging.StreamHandler())
    else:
        os.makedirs(os.path.dirname(config.log_path), exist_ok=True)
        handlers.append(PrivateFileHandler(config.log_path, gid=config.group_gid))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if mode == "prepare":
        console = logging.StreamHandler()
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter("browserd: %(levelname)s: %(message)s"))
        console.addFilter(lambda record: not getattr(record, "log_only", False))  # e.g. chromedriver output
        handlers.append(console)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(config.log_level.upper())
    for noisy in ("urllib3", "selenium"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
