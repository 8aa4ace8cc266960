"""Clients across fork(): a client connected before the fork, used in the children.

Each child must open a connection of its own (the inherited socket is never read or
written there), get exactly the pages it asked for, never block on a lock a parent thread
held at fork time, and leave the parent's client working with no descriptor leaked.

The daemon's own side of this (what Selenium opened before daemonizing) is proved by
test_daemon.py::test_selenium_connections_after_daemonizing_reach_only_our_chromedrivers.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
from collections import Counter

import psutil
import pytest

from browserd_client import AsyncClient, Backoff
from tests.support.forking import collect, fork_child

WORKERS, EACH = 4, 5
#: Seconds a child may take for all its fetches before it counts as hung (and is killed).
CHILD_BOUND = 120.0


def open_fds(pages) -> dict[str, str]:
    """This process's descriptors, number -> what it is (``socket:[...]``, ``pipe:[...]``),
    less the connections Chromium keeps alive to the page server, which runs in this
    process too and comes and goes with the browsers, not with the client."""
    page_server = {str(c.fd) for c in psutil.Process().net_connections(kind="tcp")
                   if c.laddr and c.laddr.port == pages.port}
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            if fd not in page_server:
                fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the descriptor listdir itself had open
    return fds


def urls_for(pages, tag: str, worker: int) -> list[tuple[str, str]]:
    markers = [f"FORK-{tag}-W{worker}-F{i}" for i in range(EACH)]
    return [(pages.url("/static", m=m), m) for m in markers]


def outcome(url: str, marker: str, page=None, error: BaseException | None = None) -> str:
    """``right``, ``wrong_page`` (a page, but not the one asked for) or the error's class."""
    if error is not None:
        return type(error).__name__
    return "right" if page.url == url and marker in page.source else "wrong_page"


def fetch_all(client, targets) -> list[str]:
    results = []
    for url, marker in targets:
        try:
            results.append(outcome(url, marker, client.fetch(url)))
        except Exception as exc:  # noqa: BLE001 - every failure is a counted outcome
            results.append(outcome(url, marker, error=exc))
    return results


async def fetch_all_async(client, targets) -> list[str]:
    results = []
    for url, marker in targets:
        try:
            results.append(outcome(url, marker, await client.fetch(url)))
        except Exception as exc:  # noqa: BLE001 - every failure is a counted outcome
            results.append(outcome(url, marker, error=exc))
    return results


def tally(per_worker: list[list[str] | None]) -> Counter:
    counts = Counter()
    for results in per_worker:
        counts.update(results if results is not None else ["hung"] * EACH)
    return counts


# --- a multiprocessing pool (fork start method) ---------------------------------------------

_pool_client = None
_pool_start = None


def _pool_work(targets) -> tuple[int, list[str]]:
    _pool_start.wait(timeout=60)   # the 4 tasks run at once, in 4 processes
    return os.getpid(), fetch_all(_pool_client, targets)


def test_fork_pool_workers_sharing_a_connected_client_get_their_own_pages(shared_daemon, pages):
    global _pool_client, _pool_start
    ctx = multiprocessing.get_context("fork")
    client = _pool_client = shared_daemon.client(timeout=15)
    _pool_start = ctx.Barrier(WORKERS)
    client.ping()   # connected before the fork
    before = open_fds(pages)
    pool = ctx.Pool(WORKERS)
    try:
        done = pool.map_async(_pool_work, [urls_for(pages, "POOL", w) for w in range(WORKERS)], chunksize=1)
        per_worker = done.get(timeout=CHILD_BOUND)
    finally:
        pool.terminate()
        pool.join()
    del pool, done
    gc.collect()
    counts = tally([results for _, results in per_worker])
    parent_ok = fetch_all(client, [(pages.url("/static", m="FORK-POOL-PARENT"), "FORK-POOL-PARENT")])
    after = open_fds(pages)
    client.close()
    print(f"\nfork pool, {WORKERS} workers x {EACH}: {dict(counts)}; parent afterwards: {parent_ok}; "
          f"fds {len(before)} -> {len(after)}")
    assert len({pid for pid, _ in per_worker}) == WORKERS
    assert counts == {"right": WORKERS * EACH}
    assert parent_ok == ["right"] and after == before, f"descriptors changed: {before} -> {after}"


def test_os_fork_children_sharing_a_connected_client_get_their_own_pages(shared_daemon, pages):
    client = shared_daemon.client(timeout=15)
    client.ping()
    before = open_fds(pages)
    children = [fork_child(lambda t=urls_for(pages, "OSFORK", w): fetch_all(client, t)) for w in range(WORKERS)]
    counts = tally(collect(children, CHILD_BOUND))
    parent_ok = fetch_all(client, [(pages.url("/static", m="FORK-OS-PARENT"), "FORK-OS-PARENT")])
    after = open_fds(pages)
    client.close()
    print(f"\nos.fork, {WORKERS} children x {EACH}: {dict(counts)}; parent afterwards: {parent_ok}; "
          f"fds {len(before)} -> {len(after)}")
    assert counts == {"right": WORKERS * EACH}
    assert parent_ok == ["right"] and after == before, f"descriptors changed: {before} -> {after}"


def test_async_client_in_forked_children_with_their_own_event_loops(shared_daemon, pages):
    async def parent():
        client = AsyncClient(state_dir=shared_daemon.state_dir, timeout=15, retry=Backoff(attempts=10))
        await client.ping()   # connected, on this loop, before the fork
        before = open_fds(pages)
        children = [fork_child(lambda t=urls_for(pages, "ASYNC", w): asyncio.run(fetch_all_async(client, t)))
                    for w in range(WORKERS)]
        counts = tally(collect(children, CHILD_BOUND))
        parent_ok = await fetch_all_async(client, [(pages.url("/static", m="FORK-ASYNC-PARENT"),
                                                    "FORK-ASYNC-PARENT")])
        after = open_fds(pages)
        await client.close()
        return counts, parent_ok, before, after

    counts, parent_ok, before, after = asyncio.run(parent())
    print(f"\nAsyncClient, {WORKERS} forked children x {EACH}, each with its own loop: {dict(counts)}; "
          f"parent afterwards: {parent_ok}; fds {len(before)} -> {len(after)}")
    assert counts == {"right": WORKERS * EACH}
    assert parent_ok == ["right"] and after == before, f"descriptors changed: {before} -> {after}"


@pytest.fixture
def gate():
    from tests.support.gate_pages import GatePages

    with GatePages(hold=30) as g:
        yield g


def test_child_does_not_block_on_the_lock_a_parent_thread_held_at_fork(shared_daemon, pages, gate):
    """A parent thread is mid-fetch (holding the client's lock, waiting for its reply) when
    the process forks: the child fetches at once on its own connection, and the parent's
    thread still gets its own page."""
    client = shared_daemon.client(timeout=15)
    held_url = gate.url("/gate", m="FORK-HELD")
    held: list = []
    thread = threading.Thread(target=lambda: held.append(fetch_all(client, [(held_url, "FORK-HELD")])))
    thread.start()
    try:
        assert gate.wait_held(1, timeout=30), "the parent's fetch never reached the page"
        child = fork_child(lambda: fetch_all(client, [(pages.url("/static", m="FORK-CHILD"), "FORK-CHILD")]))
        (in_child,) = collect([child], timeout=45)
    finally:
        gate.release()
        thread.join(timeout=60)
    client.close()
    print(f"\nchild while a parent thread held the lock: {in_child or 'hung'}; parent thread: {held}")
    assert in_child == ["right"]
    assert held == [["right"]]
