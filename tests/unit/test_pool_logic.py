"""Pool checkout logic with stand-in browsers (pure logic: no Chromium involved)."""

from __future__ import annotations

import threading
import time

import pytest

from browserd.browser import BrowserStartError
from browserd.pool import Pool
from browserd.pool.states import BrowserState
from browserd.stats import Stats, percentile
from browserd.watchdog import Watchdog
from browserd_client.errors import Busy, ShuttingDown


class FakeBrowser:
    """A browser without processes: the pool's ``browser_factory`` seam (supervisor's
    DummyOptions idea). ``fail_starts``: how many of the next starts fail."""

    fail_starts = 0
    started: list = []

    def __init__(self, browser_id, spec, workdir, egress=None):
        self.id, self.spec, self.workdir = browser_id, spec, workdir
        self.jobs = 0
        self.driver_pid = self.chromium_pid = self.port = 0
        self.start_seconds = 0.0
        self.owner = None
        self.session_urls = set()
        self.last_used = time.monotonic()
        self.killed = self.quitted = False
        self.tab_crashed = False

    def start(self):
        if FakeBrowser.fail_starts:
            FakeBrowser.fail_starts -= 1
            raise BrowserStartError(f"{self.id} would not start")
        FakeBrowser.started.append(self.id)
        return self

    def kill(self):
        self.killed = True

    def quit(self, timeout=5.0):
        self.killed = self.quitted = True

    def kill_renderers(self):
        return 0

    def alive(self):
        return not self.killed

    def healthy(self):
        return not self.killed


class SiteStub:
    def __init__(self, name, keep_session=False, concurrency=0):
        self.name, self.keep_session, self.concurrency = name, keep_session, concurrency


def make_pool(n):
    pool = Pool(spec=None, size=n, profiles_dir=None, stats=Stats(), browser_factory=FakeBrowser)
    assert pool.recycle_after == 0
    pool.start_browsers()
    return pool


def give_back(pool, browser):
    """A job's end without a reset: LEASED -> RESETTING -> IDLE."""
    with pool._lock:
        pool._change(browser, BrowserState.RESETTING)
    pool._checkin(browser)


def test_checkout_is_first_come_first_served():
    pool = make_pool(1)
    held = pool.checkout(1).browser
    order, started = [], []

    def waiter(i):
        started.append(i)
        lease = pool.checkout(10)
        order.append(i)
        give_back(pool, lease.browser)

    threads = []
    for i in range(5):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        while len(pool._waiters) < i + 1:  # each waiter queued before the next starts
            time.sleep(0.001)
    give_back(pool, held)
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3, 4]


def test_checkin_hands_to_waiter_not_back_to_the_idle_queue():
    pool = make_pool(1)
    held = pool.checkout(1).browser
    got = []
    t = threading.Thread(target=lambda: got.append(pool.checkout(5).browser))
    t.start()
    while not pool._waiters:
        time.sleep(0.001)
    give_back(pool, held)
    # The checking-in thread cannot take it straight back: it belongs to the waiter.
    with pytest.raises(Busy):
        pool.checkout(0)
    t.join(5)
    assert got == [held]


def test_checkout_times_out_with_busy_and_leaves_no_waiter():
    pool = make_pool(1)
    pool.checkout(1)
    with pytest.raises(Busy, match="no browser became free"):
        pool.checkout(0.01)
    assert not pool._waiters


def test_close_wakes_waiters_with_shutting_down():
    pool = make_pool(1)
    pool.checkout(1)
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(ShuttingDown, pool.checkout, 30)))
    t.start()
    while not pool._waiters:
        time.sleep(0.001)
    assert t.is_alive()  # queued jobs wait for a browser until the pool closes
    pool._wake_waiters_closing()
    t.join(5)
    assert not t.is_alive() and errors
    with pytest.raises(ShuttingDown):
        pool.checkout(1)


def test_watchdog_fires_in_deadline_order_and_skips_disarmed():
    dog = Watchdog()
    dog.start()
    fired = []
    done = threading.Event()
    now = time.monotonic()
    dog.arm(now + 0.03, lambda: (fired.append("b"), done.set()))
    h = dog.arm(now + 0.01, lambda: fired.append("x"))
    dog.arm(now + 0.02, lambda: fired.append("a"))
    dog.disarm(h)
    assert done.wait(5)
    dog.stop()
    assert fired == ["a", "b"]


def test_percentiles():
    assert percentile([], 50) is None
    values = list(range(1, 101))
    assert percentile(values, 50) in (50, 51) and percentile(values, 99) == 99


def test_a_capped_site_waits_while_other_sites_are_served():
    pool = make_pool(3)
    capped = SiteStub("shop", concurrency=1)
    first = pool.checkout(1, site=capped)
    got = []
    t = threading.Thread(target=lambda: got.append(pool.checkout(10, site=capped)))
    t.start()
    while len(pool._waiters) < 1:
        time.sleep(0.001)
    # The capped site's waiter is first in line, yet another site gets a browser at once.
    other = pool.checkout(0, site=SiteStub("news"))
    assert other.browser is not first.browser and not got
    assert pool.snapshot()["sites_in_use"] == {"shop": 1, "news": 1}
    give_back(pool, first.browser)
    t.join(10)
    assert got and pool.snapshot()["sites_in_use"] == {"shop": 1, "news": 1}
    with pytest.raises(Busy, match="concurrency cap"):
        pool.checkout(0.01, site=capped)


def test_a_session_site_gets_its_own_browser_back_and_others_prefer_clean_ones():
    pool = make_pool(2)
    account = SiteStub("account", keep_session=True)
    lease = pool.checkout(1, site=account)
    owned = lease.browser
    assert owned.owner == "account" and lease.wiped_owner is None
    give_back(pool, owned)
    # Another site takes the clean browser, not the one carrying the session.
    news = pool.checkout(1, site=SiteStub("news"))
    assert news.browser is not owned and news.wiped_owner is None
    give_back(pool, news.browser)
    # The session site gets its own browser back even though it is not the longest idle.
    again = pool.checkout(1, site=account)
    assert again.browser is owned and again.wiped_owner is None
    give_back(pool, owned)


def test_a_session_browser_is_lent_to_another_site_only_wiped():
    pool = make_pool(1)
    account = SiteStub("account", keep_session=True)
    owned = pool.checkout(1, site=account).browser
    give_back(pool, owned)
    lease = pool.checkout(1, site=SiteStub("news"))
    assert lease.browser is owned and lease.wiped_owner == "account" and owned.owner is None
    give_back(pool, owned)
    lease = pool.checkout(1, site=SiteStub("other", keep_session=True))
    assert lease.wiped_owner is None and owned.owner == "other"


def test_past_max_queue_busy_carries_a_retry_hint_and_a_ticket_that_keeps_the_place():
    pool = make_pool(1)
    pool.max_queue = 1
    held = pool.checkout(1).browser
    first = threading.Thread(target=lambda: order.append(("first", pool.checkout(10))))
    order: list = []
    first.start()
    while len(pool._waiters) < 1:
        time.sleep(0.001)
    with pytest.raises(Busy) as refused:  # the queue is full: busy at once, with a ticket
        pool.checkout(10)
    details = refused.value.details
    assert 0.5 <= details["retry_after"] <= 30 and isinstance(details["ticket"], str)
    # The ticket holder comes back past max_queue, and ahead of a newcomer queued meanwhile.
    pool.max_queue = 0
    newcomer = threading.Thread(target=lambda: order.append(("newcomer", pool.checkout(10))))
    newcomer.start()
    while len(pool._waiters) < 2:
        time.sleep(0.001)
    pool.max_queue = 1
    back = threading.Thread(target=lambda: order.append(("ticket", pool.checkout(10, ticket=details["ticket"]))))
    back.start()
    while len(pool._waiters) < 3:
        time.sleep(0.001)
    for _ in range(3):
        give_back(pool, held)
        while len(order) < _ + 1:
            time.sleep(0.001)
        held = order[-1][1].browser
    for t in (first, newcomer, back):
        t.join(10)
    assert [name for name, _ in order] == ["first", "ticket", "newcomer"]
    assert details["ticket"] not in pool._tickets  # a ticket is used once
