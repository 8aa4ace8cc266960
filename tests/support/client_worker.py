"""A client process for concurrency tests: fetches N pages and prints one JSON line each.

    python tests/support/client_worker.py STATE_DIR COUNT URL_PREFIX [ID]

Each page carries a marker unique to (process, index); the worker checks the page it
got back is the one it asked for.
"""

import json
import os
import sys
import time

from browserd_client import Backoff, BrowserdError, Client


def main() -> None:
    state_dir, count, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ident = sys.argv[4] if len(sys.argv) > 4 else str(os.getpid())
    deadline = float(os.environ.get("WORKER_DEADLINE", "120"))
    client = Client(state_dir=state_dir, timeout=60, retry=Backoff(attempts=20, deadline=deadline, cap=2.0))
    for i in range(count):
        marker = f"W{ident}x{i}"
        t0 = time.monotonic()
        rec = {"worker": ident, "i": i}
        try:
            result = client.fetch(f"{prefix}{marker}")
            rec.update(ok=marker in result.source, code="ok" if marker in result.source else "wrong_page",
                       wait=result.timing.get("queue_wait"), total=time.monotonic() - t0)
        except BrowserdError as exc:
            rec.update(ok=False, code=exc.code, message=str(exc)[:200], total=time.monotonic() - t0)
        print(json.dumps(rec), flush=True)
    client.close()


if __name__ == "__main__":
    main()
