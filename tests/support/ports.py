"""Which TCP ports a set of processes listens on, in whatever network namespace each is.

Read as root from ``/proc/PID/net/tcp{,6}`` (the table of that process's namespace) and
matched against the socket inodes in ``/proc/PID/fd``: so a port inside a browser's
private namespace is found too, and can then be tried from outside it.
"""

from __future__ import annotations

import os


def _inodes(pid: int) -> set[str]:
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(target[8:-1])
    except OSError:
        pass
    return found


def listening(pids, table_pid: int | None = None) -> list[dict]:
    """``[{"pid", "netns", "port", "address"}]`` for every listening TCP socket of ``pids``
    (in each one's own network namespace, or in ``table_pid``'s)."""
    result = []
    for pid in pids:
        inodes = _inodes(pid)
        try:
            netns = os.readlink(f"/proc/{table_pid or pid}/ns/net")
        except OSError:
            continue
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{table_pid or pid}/net/{table}") as f:
                    lines = f.read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes:  # 0A: TCP_LISTEN
                    address, port = local.rsplit(":", 1)
                    result.append({"pid": pid, "netns": netns, "port": int(port, 16), "address": address})
    return result


def _parse(address_port: str) -> int:
    return int(address_port.rsplit(":", 1)[1], 16)


def established(owner_pid: int, table_pid: int | None = None) -> list[tuple[int, int]]:
    """``[(local_port, remote_port)]`` of ``owner_pid``'s established TCP sockets that live
    in the network namespace of ``table_pid`` (default: the owner's own)."""
    inodes = _inodes(owner_pid)
    found = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{table_pid or owner_pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and fields[9] in inodes:  # 01: TCP_ESTABLISHED
                found.append((_parse(fields[1]), _parse(fields[2])))
    return found
