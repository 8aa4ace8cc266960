"""The pre-authentication budget and the failure tally, as pure logic."""

from __future__ import annotations

import pytest

from browserd.server.admission import FailureTally, PendingBudget


def test_authenticated_ones_leave_the_budget_and_free_their_place():
    budget = PendingBudget(total=2, per_peer=2)
    assert budget.admit("a", "p") == [] and budget.admit("b", "q") == []
    assert budget.release("a") is True
    assert budget.admit("c", "q") == []
    assert len(budget) == 2 and budget.peers() == {"q": 2}


def test_full_budget_drops_the_oldest_silent_one_never_the_newcomer():
    budget = PendingBudget(total=3, per_peer=3)
    for token in ("a", "b", "c"):
        budget.admit(token, token)
    dropped = []
    assert budget.admit("new", "z", drop=dropped.append) == ["a"] and dropped == ["a"]
    assert budget.tokens() == ["b", "c", "new"]
    assert budget.release("a") is False  # its thread learns it was dropped
    assert budget.release("new") is True


def test_a_peer_over_its_own_cap_loses_its_own_oldest():
    budget = PendingBudget(total=10, per_peer=2)
    budget.admit("victim-peer-1", "real")
    budget.admit("a1", "attacker")
    budget.admit("a2", "attacker")
    assert budget.admit("a3", "attacker") == ["a1"]
    assert budget.admit("a4", "attacker") == ["a2"]
    assert "victim-peer-1" in budget.tokens()  # another peer's handshake is untouched
    assert budget.peers() == {"real": 1, "attacker": 2}


def test_progress_protects_a_handshake_silent_ones_go_first():
    budget = PendingBudget(total=3, per_peer=3)
    budget.admit("real", "p")       # oldest, but it answered the challenge
    budget.admit("talking", "p")    # has unread bytes
    budget.admit("silent", "p")
    assert budget.answered("real") is True
    has_data = {"talking"}.__contains__
    assert budget.admit("n1", "p", has_data) == ["silent"]
    assert budget.admit("n2", "p", has_data) == ["n1"]  # still a silent one to take
    budget.release("n2")
    budget.admit("n3", "p", lambda t: t in ("talking", "n3"))
    assert budget.tokens() == ["real", "talking", "n3"]
    assert budget.admit("n4", "p", lambda t: t in ("talking", "n3")) == ["talking"]  # oldest with data
    assert budget.admit("n5", "p", lambda t: True) == ["n3"]
    budget.answered("n4"), budget.answered("n5")
    assert budget.admit("n6", "p") == ["real"]  # all answered: the oldest
    assert budget.answered("real") is False


def test_a_flood_never_keeps_a_newcomer_out():
    """However many silent connections arrive, the budget stays bounded and each newcomer
    is admitted and survives per_peer - 1 newer arrivals of its own peer."""
    budget = PendingBudget(total=64, per_peer=16)
    for n in range(10000):
        budget.admit(f"flood{n}", f"127.0.0.{n % 3}")
    budget.admit("real", "127.0.0.1")
    for n in range(15):
        budget.admit(f"more{n}", "127.0.0.1")
    assert len(budget) <= 64 and max(budget.peers().values()) <= 16
    assert "real" in budget.tokens()


def test_budgets_must_be_positive():
    with pytest.raises(ValueError):
        PendingBudget(0, 1)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_tally_writes_the_first_at_once_then_one_line_a_second_with_counts():
    lines, clock = [], Clock()
    tally = FailureTally(lines.append, interval=1.0, clock=clock)
    tally.record("wrong authkey", "127.0.0.1:1")
    assert len(lines) == 1 and "1 wrong authkey" in lines[0]
    for n in range(999):
        clock.now += 0.001
        tally.record("wrong authkey" if n % 3 else "handshake timeout", f"127.0.0.1:{n}")
    assert len(lines) == 1  # the burst is counted, not written
    tally.flush()
    assert len(lines) == 1  # not yet a second since the last line
    clock.now += 1.0
    tally.flush()
    assert len(lines) == 2
    assert lines[1].startswith("rejected 999 connection(s) before authentication")
    assert "333 handshake timeout, 666 wrong authkey" in lines[1] and "last peer 127.0.0.1:998" in lines[1]
    tally.flush(force=True)
    assert len(lines) == 2  # nothing left to report


def test_tally_flush_force_writes_what_is_left():
    lines, clock = [], Clock()
    tally = FailureTally(lines.append, clock=clock)
    tally.record("busy")
    tally.record("busy")
    tally.flush(force=True)
    assert [line.split(":")[1].strip() for line in lines] == ["1 busy; last peer -", "1 busy; last peer -"]
