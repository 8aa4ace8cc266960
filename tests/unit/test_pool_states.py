"""The browser lifecycle state machine, and the pool driving it with fake browsers (no
Chromium: the pool's ``browser_factory`` seam)."""

from __future__ import annotations

import itertools
import threading

import pytest

from browserd.pool import Pool
from browserd.pool.states import IN_SERVICE, TRANSITIONS, BrowserState, BrowserTable, IllegalTransition
from browserd.stats import Stats

from .test_pool_logic import FakeBrowser, SiteStub, give_back

S = BrowserState


class Item:
    def __init__(self, browser_id):
        self.id = browser_id


def table_with(state: BrowserState):
    """A table holding one browser brought to ``state`` along allowed transitions."""
    lock = threading.Lock()
    table = BrowserTable(lock)
    b = Item("x")
    path = {S.STARTING: [], S.IDLE: [S.IDLE], S.LEASED: [S.IDLE, S.LEASED],
            S.RESETTING: [S.IDLE, S.LEASED, S.RESETTING], S.PROBING: [S.IDLE, S.PROBING],
            S.REPLACING: [S.IDLE, S.REPLACING], S.RECYCLING: [S.IDLE, S.RECYCLING]}[state]
    with lock:
        table.add(b)
        for step in path:
            table.change(b, step, site="shop")
        assert table.state(b) is state
    return lock, table, b


LIVE = [s for s in S if s is not S.DEAD]


@pytest.mark.parametrize("old,new", [(o, n) for o, n in itertools.product(LIVE, S) if n not in TRANSITIONS[o]])
def test_every_illegal_transition_raises_and_leaves_the_state(old, new):
    lock, table, b = table_with(old)
    with lock:
        with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
            table.change(b, new)
        assert table.state(b) is old


@pytest.mark.parametrize("old,new", [(o, n) for o in LIVE for n in TRANSITIONS[o]])
def test_every_allowed_transition_is_taken(old, new):
    lock, table, b = table_with(old)
    with lock:
        assert table.change(b, new) is old
        assert table.state(b) is new
        assert (b.id in [x.id for x in table.all(states=set(S))]) is (new is not S.DEAD)


def test_a_dead_or_unknown_browser_cannot_change_and_the_lock_is_required():
    lock, table, b = table_with(S.IDLE)
    with lock:
        table.change(b, S.DEAD)
        for new in S:
            with pytest.raises(IllegalTransition, match="not in the pool"):
                table.change(b, new)
        with pytest.raises(IllegalTransition, match="already"):
            table.add(Item("y")) or table.add(Item("y"))
    with pytest.raises(AssertionError, match="lock"):
        table.state(b)


def test_bookkeeping_is_derived_from_the_states():
    lock = threading.Lock()
    table = BrowserTable(lock)
    a, b, c = Item("a"), Item("b"), Item("c")
    with lock:
        for x in (a, b, c):
            table.add(x)
        assert table.count(S.STARTING) == 3 and table.all() == []
        for x in (c, a, b):
            table.change(x, S.IDLE)
        assert table.in_state(S.IDLE) == [c, a, b]  # the idle queue: longest idle first
        table.change(a, S.LEASED, site="shop")
        table.change(c, S.LEASED, site="shop")
        table.change(c, S.RESETTING)
        assert table.sites_in_use() == {"shop": 2} and table.site_of(c) == "shop"
        table.change(c, S.IDLE)
        assert table.sites_in_use() == {"shop": 1} and table.site_of(c) is None
        assert table.in_state(S.IDLE) == [b, c] and table.count(*IN_SERVICE) == 3


def make_pool(n):
    FakeBrowser.fail_starts, FakeBrowser.started = 0, []
    pool = Pool(spec=None, size=n, profiles_dir=None, stats=Stats(), browser_factory=FakeBrowser)
    pool.start_browsers()
    return pool


def join_replacements():
    for t in threading.enumerate():
        if t.name.startswith("replace-"):
            t.join(30)


def test_replace_is_idempotent_from_many_threads_and_starts_one_browser():
    pool = make_pool(2)
    lease = pool.checkout(1, site=SiteStub("shop"))
    results, go = [], threading.Event()

    def call():
        go.wait()
        results.append(pool.replace(lease.browser, "broke"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(10)
    join_replacements()
    assert sorted(results) == [False] * 7 + [True]
    assert lease.browser.killed and lease.browser.quitted
    assert pool.stats.events["replaced"] == 1
    snap = pool.snapshot()
    assert (snap["total"], snap["idle"], snap["starting"], snap["sites_in_use"]) == (2, 2, 0, {})
    assert [b["id"] for b in snap["browsers"]] == ["b2", "b3"]
    assert pool.replace(lease.browser, "again") is False  # dead: left alone


def test_a_failed_replacement_start_is_retried_with_a_fresh_browser():
    pool = make_pool(1)
    old = pool.checkout(1).browser
    FakeBrowser.fail_starts = 1
    assert pool.replace(old, "broke")
    join_replacements()
    snap = pool.snapshot()
    assert [b["id"] for b in snap["browsers"]] == ["b3"] and snap["idle"] == 1 and snap["starting"] == 0


def test_recycling_only_from_idle_leaves_a_leased_browser_alone():
    pool = make_pool(1)
    lease = pool.checkout(1)
    assert pool.replace(lease.browser, "RSS", event="recycled", only_from={S.IDLE}) is False
    give_back(pool, lease.browser)
    assert pool.replace(lease.browser, "RSS", event="recycled", only_from={S.IDLE}) is True
    join_replacements()
    assert pool.stats.events["recycled"] == 1 and pool.snapshot()["idle"] == 1


def test_a_job_ending_after_the_pool_closed_neither_resets_nor_checks_in():
    pool = make_pool(1)
    browser = pool.checkout(1).browser
    pool.close()
    assert browser.quitted and pool.snapshot()["total"] == 0
    pool._schedule_reset(browser, clear_session=True, urls=[])  # would reset a fake: raises if tried
    pool._checkin(browser)
    assert pool.replace(browser, "late") is False
    assert pool.snapshot()["total"] == 0 and pool.wait_for_jobs(0.1)


def test_a_replacement_finishing_after_close_is_stopped_not_checked_in():
    pool = make_pool(1)
    browser = pool.checkout(1).browser
    pool._wake_waiters_closing()  # closing, before close() takes browsers out of service
    assert pool.replace(browser, "broke")
    assert browser.quitted  # stopped at once: no replacement while closing
    assert pool.snapshot()["total"] == 0 and pool.snapshot()["starting"] == 0
