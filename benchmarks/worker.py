"""One benchmark client process (started by benchmarks.systems.run_workers).

Its job comes as JSON in ``$BENCH_WORKER`` (never on the command line, so the daemon's
memory accounting, which looks for the state dir in command lines, never counts us):
``{"state_dir", "op": "fetch"|"ping", "url": "...{m}...", "params": {}, "ident": 0,
"count": N}``. It connects, prints ``ready``, waits for ``GO START END`` (wall clock) on
stdin, then loops until ``count`` requests are done or END passes, and prints one JSON
line: ``{"ok": [[end_wall, latency_ms, total_ms, queue_wait_ms], ...], "fail": [[end_wall, code],
...], "cpu_s": ...}`` (``total_ms`` and ``queue_wait_ms``: the job's ``timing`` as the daemon
measured it; ``cpu_s``: this process's CPU seconds from GO on).
"""

from __future__ import annotations

import json
import os
import sys
import time

from browserd_client import Backoff, Client


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
    for i in range(int(spec["count"])):
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


if __name__ == "__main__":
    main()
