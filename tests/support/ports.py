"""Which TCP ports a set of processes listens on or is connected to, in whatever network
namespace each is.

Read as root from ``/proc/PID/net/tcp{,6}`` (the table of that process's namespace) and
matched against the socket inodes in ``/proc/PID/fd``: so a port inside a browser's
private namespace is found too, and can then be tried from outside it.
"""

from __future__ import annotations

import os

TCP_ESTABLISHED, TCP_LISTEN = "01", "0A"


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


def _port(address_port: str) -> int:
    return int(address_port.rsplit(":", 1)[1], 16)


def _sockets(owner_pid: int, table_pid: int, state: str):
    """``(local, remote)`` hex address:port pairs of ``owner_pid``'s TCP sockets in state
    ``state``, from the table of ``table_pid``'s network namespace."""
    inodes = _inodes(owner_pid)
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{table_pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == state and fields[9] in inodes:
                yield fields[1], fields[2]


def listening(pids, table_pid: int | None = None) -> list[dict]:
    """``[{"pid", "netns", "port", "address"}]`` for every listening TCP socket of ``pids``
    (in each one's own network namespace, or in ``table_pid``'s)."""
    result = []
    for pid in pids:
        try:
            netns = os.readlink(f"/proc/{table_pid or pid}/ns/net")
        except OSError:
            continue
        for local, _remote in _sockets(pid, table_pid or pid, TCP_LISTEN):
            result.append({"pid": pid, "netns": netns, "port": _port(local), "address": local.rsplit(":", 1)[0]})
    return result


def established(owner_pid: int, table_pid: int | None = None) -> list[tuple[int, int]]:
    """``[(local_port, remote_port)]`` of ``owner_pid``'s established TCP sockets that live
    in the network namespace of ``table_pid`` (default: the owner's own)."""
    return [(_port(local), _port(remote))
            for local, remote in _sockets(owner_pid, table_pid or owner_pid, TCP_ESTABLISHED)]
