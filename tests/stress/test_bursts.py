"""The original failure, repeated: bursts of client processes connecting at once."""

from __future__ import annotations

import multiprocessing

from tests.conftest import run_workers
from tests.stress.conftest import percentile, scaled
from tests.support.burst_worker import burst_worker


def _report(title, records):
    waits = [r["wait"] for r in records if r.get("wait") is not None]
    totals = [r["total"] for r in records if r.get("total") is not None]
    refused = sum(r["refused"] for r in records)
    busy = sum(r["busy"] for r in records)
    failed = [r for r in records if not r.get("ok")]
    print(f"\n{title}: {len(records)} fetches, {refused} refused, {busy} busy, {len(failed)} failed; "
          f"queue wait p99 {percentile(waits, 99):.3f}s max {max(waits, default=0):.3f}s; "
          f"fetch total p50 {percentile(totals, 50):.3f}s p99 {percentile(totals, 99):.3f}s")
    return refused, busy, failed


def test_8_processes_x_2_simultaneous_connections_on_pool_of_4(start_daemon, pages):
    daemon = start_daemon(4)
    rounds, procs, conns = scaled(20), 8, 2
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [ctx.Process(target=burst_worker, args=(daemon.state_dir, pages.url("/static") + "?m=", rounds,
                                                      conns, barrier, results, n)) for n in range(procs)]
    for w in workers:
        w.start()
    records, finished = [], 0
    while finished < procs:
        rec = results.get(timeout=600)
        if rec is None:
            finished += 1
        else:
            records.append(rec)
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    refused, busy, failed = _report(f"{procs} processes x {conns} connections x {rounds} rounds, pool of 4", records)
    assert len(records) == rounds * procs * conns
    assert refused == 0 and not failed, failed[:5]
    status = daemon.status()
    assert status["events"].get("rejected_busy", 0) == 0


def test_64_processes_x_10_fetches_on_pool_of_2(start_daemon, pages):
    daemon = start_daemon(2)
    each = scaled(10)
    records = run_workers(daemon, pages, processes=64, each=each, timeout=1800)
    refused, busy, failed = _report(f"64 processes x {each} fetches, pool of 2", records)
    assert len(records) == 64 * each
    assert refused == 0 and not failed, failed[:5]
    status = daemon.status()
    print(f"daemon: {status['jobs']}, queue wait {status['queue_wait']}")
