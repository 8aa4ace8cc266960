"""A client process for concurrency tests: fetches N pages and prints one JSON line each.

    python tests/support/client_worker.py STATE_DIR COUNT URL_PREFIX [ID]

Each page carries a marker unique to (process, index); the worker checks the page it got
back is the one it asked for. Each fetch is first tried once with no retry, so refusals
and ``busy`` replies are counted honestly, then with the retrying client, so every job is
eventually served (or its failure recorded).
"""

import json
import os
import sys
import time

from browserd_client import Backoff, Busy, BrowserdError, Client, Unavailable


def fetch_counted(state_dir: str, url: str, marker: str, deadline: float, client: Client | None = None) -> dict:
    rec = {"refused": 0, "busy": 0}
    t0 = time.monotonic()
    result = None
    try:
        once = client or Client(state_dir=state_dir, timeout=60, retry=Backoff(attempts=1))
        result = once.fetch(url)
    except Unavailable as exc:
        rec["refused"] += isinstance(exc.__cause__, ConnectionRefusedError)
        rec["other_connect_error"] = repr(exc.__cause__)[:120]
    except Busy:
        rec["busy"] += 1
    except BrowserdError as exc:
        rec.update(ok=False, code=exc.code, message=str(exc)[:200], total=time.monotonic() - t0)
        return rec
    if result is None:
        try:
            retrying = Client(state_dir=state_dir, timeout=60,
                              retry=Backoff(attempts=30, deadline=deadline, cap=2.0))
            with retrying:
                result = retrying.fetch(url)
        except BrowserdError as exc:
            rec.update(ok=False, code=exc.code, message=str(exc)[:200], total=time.monotonic() - t0)
            return rec
    ok = marker in result.source
    rec.update(ok=ok, code="ok" if ok else "wrong_page", wait=result.timing.get("queue_wait"),
               total=time.monotonic() - t0)
    return rec


def main() -> None:
    state_dir, count, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ident = sys.argv[4] if len(sys.argv) > 4 else str(os.getpid())
    deadline = float(os.environ.get("WORKER_DEADLINE", "120"))
    client = Client(state_dir=state_dir, timeout=60, retry=Backoff(attempts=1))
    for i in range(count):
        marker = f"W{ident}x{i}"
        rec = {"worker": ident, "i": i}
        rec.update(fetch_counted(state_dir, f"{prefix}{marker}", marker, deadline, client))
        if not rec.get("ok"):
            client.close()
        print(json.dumps(rec), flush=True)
    client.close()


if __name__ == "__main__":
    main()
