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


def _missing():
    from browserd_client.errors import NotRunning

    return NotRunning("browserd is not running: no state.json", missing=True)


def test_missing_state_file_is_waited_for_past_attempts_until_the_deadline():
    """A restart removes the state file for seconds: a client waits for the new daemon
    (beyond ``attempts``), and says NotRunning only when the deadline passes."""
    from browserd_client.errors import NotRunning

    clock = FakeClock()
    state = RetryState(Backoff(attempts=3, base=0.05, cap=0.5, deadline=10), clock=clock, rng=random.Random(2))
    error = run(state, clock, [_missing()] * 1000)
    assert isinstance(error, NotRunning) and state.tries > 3
    assert 9.0 <= clock.now <= 10.0
    print(f"waited {clock.now:.2f}s in {state.tries} tries")


def test_daemon_back_after_a_restart_gets_the_call_through():
    clock = FakeClock()
    state = RetryState(Backoff(attempts=3, deadline=30), clock=clock, rng=random.Random(3))
    failures = iter([EOFError(), ConnectionRefusedError()] + [_missing()] * 20)
    while state.next_try():
        try:
            exc = next(failures)
        except StopIteration:
            break  # the new daemon answers
        step = state.failed(exc)
        assert step.error is None, step.error
        clock.sleep(step.delay)
    assert state.tries == 23


def test_wait_for_daemon_zero_says_not_running_at_once():
    from browserd_client.errors import NotRunning

    clock = FakeClock()
    state = RetryState(Backoff(deadline=30, wait_for_daemon=0), clock=clock)
    error = run(state, clock, [_missing()] * 10)
    assert isinstance(error, NotRunning) and state.tries == 1 and clock.now == 0


def test_client_waits_for_a_state_file_that_appears(tmp_path):
    """No daemon yet: the client re-reads the state dir until the deadline (here short)."""
    from browserd_client.errors import NotRunning

    client = Client(state_dir=str(tmp_path / "none"), retry=Backoff(deadline=0.3, cap=0.05))
    with pytest.raises(NotRunning):
        client.ping()


def test_async_client_waits_for_a_missing_state_file_then_says_not_running(tmp_path):
    import asyncio

    from browserd_client import AsyncClient
    from browserd_client.errors import NotRunning

    async def main():
        async with AsyncClient(state_dir=str(tmp_path / "none"), retry=Backoff(deadline=0.3, cap=0.05)) as c:
            await c.ping()

    with pytest.raises(NotRunning):
        asyncio.run(main())


def test_busy_retry_after_is_the_least_wait_and_its_ticket_goes_with_the_next_fetch():
    state = RetryState(Backoff(attempts=5, base=0.01, cap=0.01, deadline=60), rng=random.Random(1))
    assert state.next_try()
    step = state.failed(Busy("queue full", retry_after=3.0, ticket="t-1"))
    assert step.error is None and 3.0 <= step.delay <= 3.3
    assert state.retry_args("fetch", {"url": "u"}) == {"url": "u", "ticket": "t-1"}
    assert state.retry_args("status", {}) == {}
