"""Where a daemon publishes itself: the state directory and the files in it.

The daemon writes these files; clients only read them. Layout of ``STATE_DIR``:

- ``state.json``   pid, version, protocol, listening address, start time, browsers
- ``authkey``      the shared secret (mode 0600), kept across restarts
- ``browserd.pid`` the pidfile, locked with ``flock`` while the daemon lives
"""

from __future__ import annotations

import json
import os
import tempfile

from .errors import NotRunning

STATE_FILE = "state.json"
AUTHKEY_FILE = "authkey"
PID_FILE = "browserd.pid"
STATE_DIR_ENV = "BROWSERD_STATE_DIR"


def default_state_dir() -> str:
    """``$BROWSERD_STATE_DIR``, else ``/run/browserd`` for root, else
    ``$XDG_RUNTIME_DIR/browserd``, else ``<tmp>/browserd-<uid>``."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return os.path.abspath(env)
    if os.geteuid() == 0:
        return "/run/browserd"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "browserd")
    return os.path.join(tempfile.gettempdir(), f"browserd-{os.geteuid()}")


def read_state(state_dir: str) -> dict:
    path = os.path.join(state_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise NotRunning(f"browserd is not running: no {path}") from None
    except ValueError as exc:
        raise NotRunning(f"browserd state file {path} is unreadable: {exc}") from None


def read_authkey(state_dir: str) -> bytes:
    path = os.path.join(state_dir, AUTHKEY_FILE)
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
    except FileNotFoundError:
        raise NotRunning(f"browserd is not running: no {path}") from None
    except PermissionError:
        raise NotRunning(f"cannot read {path}: permission denied (run as the daemon's user)") from None
    if not key:
        raise NotRunning(f"{path} is empty")
    return key
