"""Children made with ``os.fork()`` that report a JSON result back on a pipe."""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback


def fork_child(work) -> tuple[int, int]:
    """Run ``work()`` in a child made by ``os.fork()``; its JSON result comes back on a pipe.
    The child always ends with ``os._exit``, never returning into pytest."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(r)
            data = json.dumps(work()).encode()
            with os.fdopen(w, "wb") as f:
                f.write(data)
            status = 0
        except BaseException:  # noqa: BLE001 - report, then leave the child
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(w)
    return pid, r


def collect(children: list[tuple[int, int]], timeout: float) -> list:
    """Each child's result, or None for one that did not report within ``timeout`` (it is
    killed) or failed. Every child is reaped and every pipe closed."""
    deadline = time.monotonic() + timeout
    data = {r: bytearray() for _, r in children}
    reading = set(data)
    while reading and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(list(reading), [], [], left)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            data[fd] += chunk
            if not chunk:
                reading.discard(fd)
    results = []
    for pid, r in children:
        if r in reading:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(r)
        ok = r not in reading and os.waitstatus_to_exitcode(status) == 0
        results.append(json.loads(data[r]) if ok else None)
    return results
