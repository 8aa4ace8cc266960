"""Backoff: full jitter, caps, attempt and deadline bounds; what the client retries."""

from __future__ import annotations

import random
import socket

import pytest

from browserd_client import Backoff, BadRequest, Busy, Client, Unavailable
from browserd_client.retry import RetryState


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


def run(state, clock, failures):
    """Drive ``state`` like the clients do, each try raising the next of ``failures``."""
    failures = iter(failures)
    while state.next_try():
        step = state.failed(next(failures))
        if step.error is not None:
            return step.error
        clock.sleep(step.delay)
    return state.give_up()


def test_state_stops_at_attempts():
    clock = FakeClock()
    state = RetryState(Backoff(attempts=3, deadline=100), clock=clock)
    error = run(state, clock, [ConnectionRefusedError()] * 10)
    assert state.tries == 3
    assert isinstance(error, Unavailable) and "after 3 tries" in str(error)
    assert isinstance(error.__cause__, ConnectionRefusedError)


def test_state_stops_at_deadline_without_oversleeping():
    clock = FakeClock()
    state = RetryState(Backoff(attempts=100, base=10, cap=10, deadline=1.0), clock=clock,
                       rng=random.Random(3))
    run(state, clock, [ConnectionResetError()] * 100)
    assert clock.now <= 1.0 + 1e-9


def test_state_raises_a_refusal_as_it_was_and_never_retries_bad_input():
    clock = FakeClock()
    busy = Busy("full")
    assert run(RetryState(Backoff(attempts=2), clock=clock), clock, [busy, busy]) is busy
    bad = BadRequest("no such site")
    state = RetryState(Backoff(attempts=5), clock=clock)
    assert run(state, clock, [bad]) is bad and state.tries == 1
    other = ValueError("a bug")
    assert run(RetryState(Backoff(attempts=5), clock=clock), clock, [other]) is other


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
