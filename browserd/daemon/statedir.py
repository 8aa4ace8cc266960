"""The state directory is input: verify it before anything in it is read, written,
deleted or signalled (STYLE trap 14).

Rules, checked by :func:`prepare` (``start``, ``run``) and :func:`verify` (``stop``,
``status`` and the other client commands when run by the directory's owner):

- the directory is created with ``mkdir(0700)``; an existing one is never trusted: it must
  be a real directory (not a symlink), owned by the effective user, and neither group- nor
  world-writable; every entry in it must be owned by us and none may be a symlink;
- its ancestors must be owned by root or by us and not writable by others (unless sticky,
  like /tmp), so no other user can swap it between the check and its use;
- modes are set explicitly (``fchmod``), whatever the umask: the directory 0700 and files
  0600, or 0750/0640 with the ``group`` setting (and ``fchown`` to that group);
- files are opened with ``O_NOFOLLOW | O_CLOEXEC`` and their owner and type checked with
  ``fstat`` on the open descriptor.

A directory that fails is refused with one line (:class:`StateDirError`) and nothing in it
is written, deleted or signalled. The private file ``browsers.json`` (0600, never shared
with the group) holds the browser records the stale-daemon sweep needs; ``state.json`` only
what a client needs.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat

from .errors import StateDirError

BROWSERS_FILE = "browsers.json"  # browser records for the stale-daemon sweep: daemon's user only
CONFIG_FILE = "config.json"  # the last start's config sources, for ``restart``: daemon's user only
DIR_MODE, DIR_MODE_GROUP = 0o700, 0o750
FILE_MODE, FILE_MODE_GROUP = 0o600, 0o640
PRIVATE = None  # ``gid`` value meaning "never shared with the group"


def dir_mode(gid: int | None) -> int:
    """The state dir's mode: 0700, or 0750 when shared with the group ``gid``."""
    return DIR_MODE if gid is None else DIR_MODE_GROUP


def file_mode(gid: int | None) -> int:
    """A file's mode: 0600, or 0640 when shared with the group ``gid``."""
    return FILE_MODE if gid is None else FILE_MODE_GROUP


# -- pure checks (unit-tested) -------------------------------------------------------------------

def dir_problem(st: os.stat_result, euid: int) -> str | None:
    """Why a state directory with this ``lstat`` is not ours, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != euid:
        return f"is owned by uid {st.st_uid}, not by us (uid {euid})"
    if st.st_mode & 0o022:
        return f"is group- or world-writable (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def entry_problem(name: str, st: os.stat_result, euid: int) -> str | None:
    """Why an entry of the state directory (its ``lstat``) is not ours, or None."""
    if stat.S_ISLNK(st.st_mode):
        return f"holds a symlink {name!r}"
    if st.st_uid != euid:
        return f"holds {name!r} owned by uid {st.st_uid}, not by us (uid {euid})"
    return None


def ancestor_problem(path: str, st: os.stat_result, euid: int) -> str | None:
    """Why an ancestor directory would let another user replace the state dir, or None."""
    if st.st_uid not in (0, euid):
        return f"its parent {path} is owned by uid {st.st_uid}"
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return f"its parent {path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def inside(path: str, directory: str) -> bool:
    """True when ``path`` is strictly below ``directory`` (both normalized, no ``..``)."""
    path, directory = os.path.normpath(path), os.path.normpath(directory)
    return path != directory and os.path.commonpath([path, directory]) == directory


# -- the directory -------------------------------------------------------------------------------

def _check_ancestors(parent: str, euid: int) -> None:
    current = os.path.realpath(parent)
    for _ in range(256):  # bounded: a path has at most this many components here
        problem = ancestor_problem(current, os.stat(current), euid)
        if problem:
            raise StateDirError(problem)
        up = os.path.dirname(current)
        if up == current:
            return
        current = up


def _open_dir(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise StateDirError("is a symlink or not a directory") from None
        raise StateDirError(exc.strerror) from None


def _check(path: str, gid: int | None, fix: bool) -> None:
    euid = os.geteuid()
    _check_ancestors(os.path.dirname(path), euid)
    problem = dir_problem(os.lstat(path), euid)
    if problem:
        raise StateDirError(problem)
    fd = _open_dir(path)
    try:
        problem = dir_problem(os.fstat(fd), euid)  # the directory we opened, not a swapped one
        if problem:
            raise StateDirError(problem)
        for name in os.listdir(fd):
            problem = entry_problem(name, os.stat(name, dir_fd=fd, follow_symlinks=False), euid)
            if problem:
                raise StateDirError(problem)
        if fix:
            if gid is not None:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, dir_mode(gid))
    finally:
        os.close(fd)


def path_problem(path: str, exc: OSError) -> str:
    """One line for an OSError on ``path``: names the component that is not a directory
    (``/etc/passwd/x``: "/etc/passwd is not a directory", not "File exists")."""
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        current = os.sep
        for part in os.path.normpath(path).split(os.sep)[1:]:
            current = os.path.join(current, part)
            if os.path.lexists(current) and not os.path.isdir(current):
                return f"{current} is not a directory"
    return exc.strerror or str(exc)


def _refused(path: str, reason: str) -> StateDirError:
    return StateDirError(f"refusing state dir {path}: it {reason}; nothing was read, written or deleted "
                         f"(use a directory of your own: --state-dir or $BROWSERD_STATE_DIR)")


def prepare(path: str, gid: int | None = None) -> None:
    """``start``/``run``: create the state dir (0700, 0750 with a group) or verify the
    existing one, then set its mode and group. Raises :class:`StateDirError`."""
    try:
        parent = os.path.dirname(path)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        _check(path, gid, fix=True)
    except StateDirError as exc:
        raise _refused(path, str(exc)) from None
    except OSError as exc:
        raise StateDirError(f"cannot use state dir {path}: {path_problem(path, exc)}") from None


def verify(path: str) -> bool:
    """``stop`` and the client commands: False when the state dir does not exist, True
    when it is ours; raises :class:`StateDirError` when it is not. Changes nothing."""
    try:
        os.lstat(path)
        _check(path, None, fix=False)
    except FileNotFoundError:
        return False
    except StateDirError as exc:
        raise _refused(path, str(exc)) from None
    except OSError as exc:
        raise StateDirError(f"cannot use state dir {path}: {path_problem(path, exc)}") from None
    return True


def owned_by_us(path: str) -> bool:
    """True when ``path`` exists and belongs to the effective user (then the full checks
    apply to a client command too; a group member reads a daemon's dir it does not own)."""
    try:
        return os.lstat(path).st_uid == os.geteuid()
    except OSError:
        return False


# -- files in it ---------------------------------------------------------------------------------

def open_file(path: str, flags: int, gid: int | None = PRIVATE, fix: bool | None = None) -> int:
    """``os.open`` that never follows a symlink, refuses a file that is not a regular
    file of ours, and (when writing, or ``fix``) sets the mode (0600, or 0640 with
    ``gid``) whatever the umask."""
    mode = file_mode(gid)
    if fix is None:
        fix = bool(flags & (os.O_WRONLY | os.O_RDWR))
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateDirError(f"refusing {path}: it is a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise StateDirError(f"refusing {path}: not a regular file of ours (uid {st.st_uid})")
        if fix:
            if gid is not None:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: str) -> bytes | None:
    """The content of a file of ours (None when missing); never through a symlink."""
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def set_mode(path: str, gid: int | None = PRIVATE) -> None:
    """Set an existing file's mode and group (0600, or 0640 to ``gid``)."""
    os.close(open_file(path, os.O_RDONLY, gid, fix=True))


def write_file(path: str, data: bytes, gid: int | None = PRIVATE) -> None:
    """Replace ``path`` atomically with ``data``: a fresh temporary file (``O_EXCL``, so
    never a planted one), mode set before any byte is written, then ``rename``."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, gid)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path: str, data: dict, gid: int | None = PRIVATE) -> None:
    """Write ``data`` as JSON to ``path`` (replaced whole; mode from ``gid``, see :func:`write_file`)."""
    write_file(path, (json.dumps(data, indent=2) + "\n").encode(), gid)


def read_json(path: str, default):
    """A JSON file of ours, or ``default`` when missing or garbled."""
    raw = read_file(path)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def check_log_file(path: str, gid: int | None = PRIVATE) -> str | None:
    """Why the daemon could not write its log at ``path``, or None: its directory must
    exist (nothing is created outside the state dir) and the file be ours to append to
    (it is created 0600, 0640 with ``gid``, if missing)."""
    directory = os.path.dirname(path)
    if not os.path.lexists(directory):
        return f"its directory {directory} does not exist"
    if not os.path.isdir(directory):
        return path_problem(path, OSError(errno.ENOTDIR, "Not a directory"))
    try:
        os.close(open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, gid))
    except StateDirError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot write it: {path_problem(path, exc)}"
    return None


def load_authkey(path: str, gid: int | None = None) -> bytes:
    """The shared secret: generated at first start, then kept across restarts; 0600 (0640
    to ``gid``). Only called once the state dir passed its checks: a planted key in a dir
    that is not ours is never used."""
    key = (read_file(path) or b"").strip()
    if key:
        set_mode(path, gid)
        return key
    key = secrets.token_hex(32).encode()
    write_file(path, key + b"\n", gid)
    return key
