"""Finding a daemon's processes (by state dir path, never by name) and waiting for them."""

from __future__ import annotations

import os
import time

import psutil


def ours(state_dir: str) -> list[psutil.Process]:
    """Live processes whose command line or XDG_CONFIG_HOME mentions ``state_dir``."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if state_dir in " ".join(proc.cmdline()) or state_dir in proc.environ().get("XDG_CONFIG_HOME", ""):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def pid_state(pid: int) -> str:
    """'gone', 'zombie:<ppid>' or 'alive'."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"zombie:{proc.ppid()}"
        return "alive"
    except psutil.NoSuchProcess:
        return "gone"


def wait_gone(pids, timeout: float) -> dict:
    """Poll until every pid is gone (reaped), at most ``timeout`` seconds; return the
    states of those that are not (empty dict when all are gone)."""
    deadline = time.monotonic() + timeout
    while True:
        left = {pid: pid_state(pid) for pid in pids}
        left = {pid: s for pid, s in left.items() if s != "gone"}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def zombie_children(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children() if c.status() == psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def browser_records(state_dir: str) -> list[dict]:
    """The daemon's private browser records (``browsers.json``; ``state.json`` has none)."""
    import json

    with open(os.path.join(state_dir, "browsers.json"), encoding="utf-8") as f:
        return json.load(f)["browsers"]
