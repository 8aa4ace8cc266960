"""Backoff: full jitter, caps, attempt and deadline bounds; what the client retries."""

from __future__ import annotations

import random
import socket

import pytest

from browserd_client import Backoff, BadRequest, Busy, Client, Unavailable
from browserd_client.retry import RetryBudget


def test_delays_are_full_jitter_under_an_exponential_cap():
    policy = Backoff(attempts=8, base=0.1, cap=1.0)
    rng = random.Random(1)
    delays = list(policy.delays(rng))
    assert len(delays) == 7
    for n, d in enumerate(delays):
        assert 0 <= d <= min(1.0, 0.1 * 2 ** n)


def test_jitter_spreads_a_burst_of_clients():
    policy = Backoff(base=0.1, cap=2.0)
    firsts = {round(next(policy.delays(random.Random(seed))), 4) for seed in range(50)}
    assert len(firsts) > 40  # not all clients come back at the same moment


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_budget_stops_at_attempts():
    clock = FakeClock()
    budget = RetryBudget(Backoff(attempts=3, deadline=100), clock=clock, sleep=clock.sleep)
    assert budget.wait() and budget.wait()
    assert not budget.wait()


def test_budget_stops_at_deadline_without_oversleeping():
    clock = FakeClock()
    budget = RetryBudget(Backoff(attempts=100, base=10, cap=10, deadline=1.0), clock=clock, sleep=clock.sleep,
                         rng=random.Random(3))
    while budget.wait():
        pass
    assert clock.now <= 1.0 + 1e-9


def test_client_retries_refused_connections_then_gives_up():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # refused from now on
    client = Client(f"127.0.0.1:{port}", b"k", retry=Backoff(attempts=4, base=0.001, cap=0.002, deadline=5))
    with pytest.raises(Unavailable, match="after 4 tries"):
        client.ping()


def test_client_retries_busy_but_never_bad_request(monkeypatch):
    client = Client("127.0.0.1:1", b"k", retry=Backoff(attempts=3, base=0.001, cap=0.001))
    calls = []

    def busy(*a, **k):
        calls.append("busy")
        raise Busy("full")

    monkeypatch.setattr(client, "_call_once", busy)
    with pytest.raises(Busy):
        client.ping()
    assert len(calls) == 3

    calls.clear()

    def bad(*a, **k):
        calls.append("bad")
        raise BadRequest("no")

    monkeypatch.setattr(client, "_call_once", bad)
    with pytest.raises(BadRequest):
        client.ping()
    assert calls == ["bad"]
