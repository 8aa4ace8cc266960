"""A browser's processes, found by its private working directory (never by name): are
they alive (/proc), how much memory do they use, and signalling them as a group."""

from __future__ import annotations

import os
import signal

import psutil

def pid_alive(pid: int, create_time: float) -> bool:
    """True if ``pid`` is the same process we recorded and it is not a zombie."""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def processes_of(pgid: int, workdir: str) -> list[psutil.Process]:
    """Live processes of one browser, found by its private working directory: on the
    command line (chromedriver's --log-path, Chromium's --user-data-dir, crashpad's
    database) or in the environment every process of the browser inherits. ``pgid`` is
    accepted for symmetry with the records; identity is the directory, never the name.
    Zombies are left out: they are already dead."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if workdir in " ".join(proc.cmdline()) or workdir in proc.environ().get("XDG_CONFIG_HOME", ""):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError):
            continue
    return found


def renderers_of(chromium_pid: int, create_time: float) -> list[psutil.Process]:
    """The renderer processes (``--type=renderer``) under the Chromium browser process
    ``chromium_pid`` (checked against its recorded ``create_time``), found through the
    process tree (a sandboxed renderer's environment is not readable). Empty if that
    Chromium is gone."""
    if not chromium_pid or not pid_alive(chromium_pid, create_time):
        return []
    found = []
    try:
        children = psutil.Process(chromium_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if "--type=renderer" in child.cmdline():
                found.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def total_rss(procs) -> int:
    """Summed resident memory of ``procs`` in bytes, skipping any that exited meanwhile."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def kill_group_and_strays(pgid: int, procs: list[psutil.Process], sig: int) -> None:
    """Signal the group (atomic for its members, even ones forked a moment ago) when a
    process found to be ours is in it, so a reused group number is never signalled;
    then each process found, for those that left the group."""
    for proc in procs:
        try:
            if os.getpgid(proc.pid) == pgid:
                os.killpg(pgid, sig)
                break
        except (ProcessLookupError, PermissionError):
            continue
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def kill_recorded(record: dict, sig: int = signal.SIGKILL) -> int:
    """Signal every live process of a browser described by :meth:`Browser.record`.
    Used for a dead daemon's leftovers; returns how many processes were signalled."""
    if record.get("grid_url") and record.get("session_id"):
        from ..grid import delete_session

        return int(delete_session(record["grid_url"], record["session_id"]))
    if not record.get("workdir"):
        return 0
    procs = processes_of(record.get("pgid", -1), record["workdir"])
    kill_group_and_strays(record.get("pgid", -1), procs, sig)
    return len(procs)

