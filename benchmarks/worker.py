"""One benchmark client process (started by benchmarks.systems.run_workers).

Its job comes as JSON in ``$BENCH_WORKER`` (never on the command line, so the daemon's
memory accounting, which looks for the state dir in command lines, never counts us):
``{"state_dir", "op": "fetch"|"ping", "url": "...{m}...", "params": {}, "ident": 0,
"count": N}``. It connects, prints ``ready``, waits for ``GO START END`` (wall clock) on
stdin, then loops until ``count`` requests are done or END passes, and prints one JSON
line: ``{"ok": [[end_wall, latency_ms, total_ms, queue_wait_ms], ...], "fail": [[end_wall, code],
...], "cpu_s": ...}`` (``total_ms`` and ``queue_wait_ms``: the job's ``timing`` as the daemon
measured it; ``cpu_s``: this process's CPU seconds from GO on).

With ``"cells": [{"url", "params", "expect": {result key: minimum length}}, ...]`` instead
of ``url``/``params`` it goes round-robin over the cells, ``count`` rounds, each round in a
shuffled order: each sample then ends with the cell's index and the round's (``[..., cell,
round]``, failures too), and a result that lacks an expected key of the raw reply
(``screenshot``, ``pdf``, ``value``, ``responses``: the outputs of job options) or has fewer
items than asked for is a ``missing_output`` failure.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

from browserd_client import Backoff, Client
from browserd_client.ops import fetch_request


def fetch_cell(client: Client, cell: dict, marker: str) -> tuple[bool, dict, str]:
    """One job of a cell, read from the raw reply (the outputs included, whichever client
    version decodes them): ``(good, timing, failure code)``."""
    args, reply_timeout = fetch_request(cell["url"].format(m=marker), "generic", None, client.timeout,
                                        cell.get("params") or {})
    result = client._call("fetch", args, reply_timeout=reply_timeout)
    if marker not in result.get("source", ""):
        return False, {}, "wrong_page"
    for key, least in (cell.get("expect") or {}).items():
        got = result.get(key)
        if got is None or (least and len(got) < least):
            return False, {}, "missing_output"
    return True, result.get("timing") or {}, ""


def main() -> None:
    spec = json.loads(os.environ["BENCH_WORKER"])
    client = Client(state_dir=spec["state_dir"], timeout=spec.get("timeout", 30),
                    retry=Backoff(attempts=3, deadline=15))
    client.ping()  # connect and authenticate before the clock starts
    print("ready", flush=True)
    _, start, end = sys.stdin.readline().split()
    start, end = float(start), float(end)
    time.sleep(max(0.0, start - time.time()))
    cpu0 = time.process_time()
    ok, fail = [], []
    cells = spec.get("cells")
    if cells:
        rounds(client, spec, cells, end, ok, fail)
    for i in range(0 if cells else int(spec["count"])):
        if time.time() >= end:
            break
        marker = f"w{spec['ident']}x{i}"
        t0 = time.perf_counter()
        try:
            if spec["op"] == "ping":
                client.ping()
                good = True
            else:
                page = client.fetch(spec["url"].format(m=marker), **spec.get("params", {}))
                good = marker in page.source
        except Exception as exc:  # every failure is counted, none ends the run
            fail.append([time.time(), getattr(exc, "code", type(exc).__name__)])
            client.close()
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        if good:
            timing = page.timing if spec["op"] == "fetch" else {}
            ok.append([time.time(), round(elapsed, 3), round(timing.get("total", 0) * 1000, 3),
                       round(timing.get("queue_wait", 0) * 1000, 3)])
        else:
            fail.append([time.time(), "wrong_page"])
    client.close()
    print(json.dumps({"ok": ok, "fail": fail, "cpu_s": time.process_time() - cpu0}), flush=True)


def rounds(client: Client, spec: dict, cells: list, end: float, ok: list, fail: list) -> None:
    """``spec["count"]`` rounds over ``cells``, each cell once a round, until ``end``; each
    round in an order of its own (shuffled, seeded by the round), so that no cell always
    follows the same one (with N browsers, the job before overlaps with its own reset)."""
    for r in range(int(spec["count"])):
        order = list(range(len(cells)))
        random.Random(r).shuffle(order)
        for k in order:
            cell = cells[k]
            if time.time() >= end:
                return
            marker = f"w{spec['ident']}r{r}c{k}"
            t0 = time.perf_counter()
            try:
                good, timing, code = fetch_cell(client, cell, marker)
            except Exception as exc:  # every failure is counted, none ends the run
                fail.append([time.time(), getattr(exc, "code", type(exc).__name__), k, r])
                client.close()
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            if good:
                ok.append([time.time(), round(elapsed, 3), round(timing.get("total", 0) * 1000, 3),
                           round(timing.get("queue_wait", 0) * 1000, 3), k, r])
            else:
                fail.append([time.time(), code, k, r])


if __name__ == "__main__":
    main()
