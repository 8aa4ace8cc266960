"""Where a daemon publishes itself: the state directory and the files in it.

The daemon writes these files; clients only read them. Layout of ``STATE_DIR``:

- ``state.json``   pid, version, protocol, listening address, start time (nothing secret)
- ``authkey``      the shared secret, kept across restarts
- ``browserd.pid`` the pidfile, locked with ``flock`` while the daemon lives

All 0600 in a 0700 directory, or 0640/0750 to the daemon's ``group`` setting; a user
outside that group gets :class:`~browserd_client.errors.PermissionDenied`, not
``NotRunning``. Files are read without following symlinks.
"""

from __future__ import annotations

import errno
import grp
import json
import os
import pwd
import stat
import tempfile

from .errors import NotRunning, PermissionDenied

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


def _name(lookup, number: int) -> str:
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def permission_message(state_dir: str, st: os.stat_result | None, groups) -> str:
    """Why this user cannot read the key in ``state_dir`` (``st``: the dir's stat, when
    it could be taken; ``groups``: this user's gids)."""
    if st is not None and st.st_mode & stat.S_IRGRP and st.st_gid not in groups:
        group = _name(grp.getgrgid, st.st_gid)
        return (f"browserd may be running, but you cannot read the key (not in group {group}); "
                f"state dir {state_dir}")
    owner = _name(pwd.getpwuid, st.st_uid) if st is not None else "another user"
    return (f"browserd may be running, but you cannot read the key: state dir {state_dir} belongs to "
            f"{owner} and is not shared with a group of yours (the daemon's `group` setting)")


def _denied(state_dir: str) -> PermissionDenied:
    try:
        st = os.stat(state_dir)
    except OSError:
        st = None
    groups = set(os.getgroups()) | {os.getegid()}
    return PermissionDenied(permission_message(state_dir, st, groups))


def _read(state_dir: str, name: str) -> bytes:
    """A state file's bytes; never through a symlink. NotRunning when it is missing,
    PermissionDenied when it is there but not ours to read."""
    path = os.path.join(state_dir, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotRunning(f"browserd is not running: no {path}", missing=True) from None
    except PermissionError:
        raise _denied(state_dir) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRunning(f"refusing {path}: it is a symlink") from None
        raise NotRunning(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise NotRunning(f"refusing {path}: not a regular file")
        return f.read(1 << 20)


def read_state(state_dir: str) -> dict:
    """The daemon's ``state.json`` in ``state_dir``: ``pid``, ``version``, ``protocol``,
    ``address`` (an address dict) and ``started_at`` (Unix seconds). Raises
    :class:`NotRunning` when it is missing (``details["missing"]``) or unreadable,
    :class:`PermissionDenied` when this user may not read it."""
    path = os.path.join(state_dir, STATE_FILE)
    try:
        return json.loads(_read(state_dir, STATE_FILE))
    except ValueError as exc:
        raise NotRunning(f"browserd state file {path} is unreadable: {exc}") from None


def read_authkey(state_dir: str) -> bytes:
    """The daemon's authkey (bytes, surrounding whitespace stripped) from ``state_dir``;
    errors as :func:`read_state`, and :class:`NotRunning` for an empty key file."""
    path = os.path.join(state_dir, AUTHKEY_FILE)
    key = _read(state_dir, AUTHKEY_FILE).strip()
    if not key:
        raise NotRunning(f"{path} is empty")
    return key
