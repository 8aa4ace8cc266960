"""Burst rounds: every process opens its connections at the same moment (a barrier),
fetches once on each, closes; repeated for several rounds."""

import threading

from tests.support.client_worker import fetch_counted


def burst_worker(state_dir, prefix, rounds, connections, barrier, results, ident):
    for r in range(rounds):
        barrier.wait(timeout=300)
        out = []

        def one(k):
            marker = f"B{ident}r{r}c{k}"
            rec = {"worker": ident, "round": r, "conn": k}
            rec.update(fetch_counted(state_dir, f"{prefix}{marker}", marker, deadline=120))
            out.append(rec)

        threads = [threading.Thread(target=one, args=(k,)) for k in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        for rec in out:
            results.put(rec)
    results.put(None)
