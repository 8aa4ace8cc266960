"""The state directory's pure checks: what makes a dir, an entry, a parent, a browser
record or a pidfile untrustworthy, and the message a user outside the group gets."""

from __future__ import annotations

import os
import stat

import pytest

from browserd.daemon import statedir
from browserd.daemon.pidfile import parse_pid_record
from browserd.daemon.stale import sweepable
from browserd_client.state import permission_message

ME = 1000


def st(mode: int, uid: int = ME, gid: int = ME) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize("mode,uid,problem", [
    (stat.S_IFDIR | 0o700, ME, None),
    (stat.S_IFDIR | 0o755, ME, None),              # readable by others: tightened, not refused
    (stat.S_IFLNK | 0o777, ME, "symlink"),
    (stat.S_IFREG | 0o600, ME, "not a directory"),
    (stat.S_IFDIR | 0o700, 65534, "owned by uid 65534"),
    (stat.S_IFDIR | 0o770, ME, "writable"),
    (stat.S_IFDIR | 0o707, ME, "writable"),
])
def test_dir_problem(mode, uid, problem):
    found = statedir.dir_problem(st(mode, uid), ME)
    assert (found is None) if problem is None else (problem in found)


def test_entry_problem_refuses_symlinks_and_foreign_files():
    assert statedir.entry_problem("authkey", st(stat.S_IFREG | 0o600), ME) is None
    assert "symlink" in statedir.entry_problem("browserd.log", st(stat.S_IFLNK | 0o777), ME)
    assert "uid 65534" in statedir.entry_problem("authkey", st(stat.S_IFREG | 0o600, 65534), ME)


def test_ancestor_problem_allows_root_and_sticky_dirs_only():
    assert statedir.ancestor_problem("/tmp", st(stat.S_IFDIR | 0o1777, 0), ME) is None
    assert statedir.ancestor_problem("/run", st(stat.S_IFDIR | 0o755, 0), ME) is None
    assert statedir.ancestor_problem("/home/me", st(stat.S_IFDIR | 0o700, ME), ME) is None
    assert "owned by uid 65534" in statedir.ancestor_problem("/x", st(stat.S_IFDIR | 0o755, 65534), ME)
    assert "writable by others" in statedir.ancestor_problem("/x", st(stat.S_IFDIR | 0o777, 0), ME)


def test_inside_is_strict_and_normalized():
    assert statedir.inside("/run/browserd/browsers/b1", "/run/browserd/browsers")
    assert not statedir.inside("/run/browserd/browsers", "/run/browserd/browsers")
    assert not statedir.inside("/run/browserd/browsers/../../etc", "/run/browserd/browsers")
    assert not statedir.inside("/run/browserd/browsers-evil/b1", "/run/browserd/browsers")


class _Config:
    profiles_dir = "/run/browserd/browsers"
    grid_url = ""


@pytest.mark.parametrize("record,ok", [
    ({"workdir": "/run/browserd/browsers/b1", "pgid": 10}, True),
    ({"workdir": "/home/victim", "pgid": 10}, False),
    ({"workdir": "sleep", "pgid": 10}, False),                       # a substring of any cmdline
    ({"workdir": "/run/browserd/browsers/../x", "pgid": 10}, False),
    ({"workdir": "/run/browserd/browsers/b1", "pgid": "1"}, False),
    ({"grid_url": "http://evil:4444", "session_id": "s"}, False),   # not our grid
    ("not a dict", False),
])
def test_sweepable_records_lie_inside_our_profiles_dir(record, ok):
    assert sweepable(record, _Config()) is ok


def test_pid_record_parses_pid_create_time_and_executable():
    assert parse_pid_record(b"123\n1700000000.25 /usr/bin/python3\n") == (123, 1700000000.25, "/usr/bin/python3")
    assert parse_pid_record(b"123\n") == (123, None, "")  # an old or planted pidfile: no proof
    assert parse_pid_record(b"") == (None, None, "")
    assert parse_pid_record(b"x\ny z\n") == (None, None, "z")


def test_permission_message_names_the_group_or_the_owner():
    shared = st(stat.S_IFDIR | 0o750, uid=0, gid=0)
    msg = permission_message("/run/browserd", shared, groups={ME})
    assert "cannot read the key (not in group root)" in msg
    private = st(stat.S_IFDIR | 0o700, uid=0, gid=0)
    assert "belongs to root" in permission_message("/run/browserd", private, groups={ME})


def test_prepare_creates_0700_under_umask_000_and_refuses_symlinks(tmp_path):
    old = os.umask(0)
    try:
        path = str(tmp_path / "state")
        statedir.prepare(path)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
        statedir.write_file(os.path.join(path, "f"), b"x")
        assert stat.S_IMODE(os.lstat(os.path.join(path, "f")).st_mode) == 0o600
    finally:
        os.umask(old)
    link = str(tmp_path / "link")
    os.symlink(path, link)
    with pytest.raises(statedir.StateDirError, match="symlink"):
        statedir.prepare(link)
    with pytest.raises(statedir.StateDirError, match="symlink"):
        statedir.verify(link)
    assert statedir.verify(str(tmp_path / "missing")) is False
    os.symlink("/etc/passwd", os.path.join(path, "state.json"))
    with pytest.raises(statedir.StateDirError, match="symlink"):
        statedir.verify(path)
