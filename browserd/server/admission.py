"""Admission before authentication: the pending-handshake budget and the failure tally.

Pure logic (no sockets, an injectable clock) so it is unit-tested on its own; the server
(:mod:`browserd.server`) owns the sockets and acts on the decisions.

Why a budget of its own: a connection that has not authenticated yet is anyone's. If it
counted against ``max_connections``, 256 silent connections would take every slot and
real clients would get ``busy``. So authenticated connections count against
``max_connections``, and connections still in their handshake against a small separate
budget: ``total`` in all and ``per_peer`` per peer (a Unix socket peer is its uid, a TCP
peer its remote address).

What separates a local attacker from a real client is *time*, not the address (on
loopback every client is 127.0.0.1, and any 127/8 source address is free to take): a real
client answers the challenge within milliseconds, a flood holds its connections open. So
a full budget never refuses a newcomer; it drops the *oldest* pending handshake that has
shown no progress, preferring, in order: a silent one (no answer read and no unread
bytes), then one with unread bytes, then one that already answered the challenge
correctly (only a client holding the authkey can). The newest connection, a real
client's, is dropped only after ``per_peer`` (or ``total``) newer ones came in before it
answered; if it is, it sees a reset, and real clients retry those with backoff.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from typing import Callable, Hashable

# What a pending handshake has shown so far; lower ranks are dropped first.
SILENT, HAS_DATA, ANSWERED = 0, 1, 2


class PendingBudget:
    """Connections in their handshake, oldest first. Thread-safe.

    ``admit`` returns the tokens to drop (the caller closes them); ``answered`` marks a
    token whose peer gave the right answer; ``release`` ends a token's handshake and says
    whether it was still held (False: it had been dropped, its connection must close).
    """

    def __init__(self, total: int, per_peer: int):
        if total < 1 or per_peer < 1:
            raise ValueError("budgets must be >= 1")
        self.total, self.per_peer = total, per_peer
        self._lock = threading.Lock()
        self._pending: OrderedDict[Hashable, list] = OrderedDict()  # token -> [peer, answered]
        self._by_peer: Counter = Counter()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def tokens(self) -> list:
        """The handshakes pending now (a copy, oldest first)."""
        with self._lock:
            return list(self._pending)

    def peers(self) -> dict:
        """Pending handshakes per peer (peer -> count), a copy."""
        with self._lock:
            return {peer: n for peer, n in self._by_peer.items() if n}

    def admit(self, token: Hashable, peer: Hashable,
              has_data: Callable[[Hashable], bool] = lambda token: False,
              drop: Callable[[Hashable], None] | None = None) -> list:
        """Take ``token`` in; return the tokens dropped to make room (0 or 1).

        ``has_data(token)`` says whether a pending connection has unread bytes (checked
        only while choosing whom to drop); ``drop(token)``, if given, is called for each
        dropped token before the lock is released, so the caller can shut the connection
        down before its own thread can close it.
        """
        with self._lock:
            victims = []
            if self._by_peer[peer] >= self.per_peer:
                victims.append(self._choose(peer, has_data))
            elif len(self._pending) >= self.total:
                victims.append(self._choose(None, has_data))
            for victim in victims:
                self._remove(victim)
                if drop is not None:
                    drop(victim)
            self._pending[token] = [peer, False]
            self._by_peer[peer] += 1
            return victims

    def _choose(self, peer, has_data) -> Hashable:
        """The oldest of the lowest rank among ``peer``'s tokens (all tokens if None)."""
        best, best_rank = None, None
        for token, (owner, answered) in self._pending.items():  # oldest first
            if peer is not None and owner != peer:
                continue
            rank = ANSWERED if answered else (HAS_DATA if has_data(token) else SILENT)
            if best_rank is None or rank < best_rank:
                best, best_rank = token, rank
                if rank == SILENT:
                    break
        return best

    def _remove(self, token) -> None:
        peer, _ = self._pending.pop(token)
        self._by_peer[peer] -= 1
        if not self._by_peer[peer]:
            del self._by_peer[peer]

    def answered(self, token: Hashable) -> bool:
        """The peer answered the challenge correctly; False if the token was dropped."""
        with self._lock:
            entry = self._pending.get(token)
            if entry is None:
                return False
            entry[1] = True
            return True

    def release(self, token: Hashable) -> bool:
        """The handshake is over (either way): True if the token was still held."""
        with self._lock:
            if token not in self._pending:
                return False
            self._remove(token)
            return True


class FailureTally:
    """Counts rejected connections by reason and reports them at most once per
    ``interval`` as one line: the total, the count per reason, the last peer.

    The first rejection after a quiet interval is reported at once; later ones are
    folded into the next line, written by :meth:`record` or by :meth:`flush` (which the
    server calls about once a second, so the last counts of a burst are not held back).
    ``emit(text)`` writes the line; the peer text must already be log-safe.
    """

    def __init__(self, emit: Callable[[str], None], interval: float = 1.0, clock=time.monotonic):
        self._emit, self.interval, self._clock = emit, interval, clock
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._last_peer = ""
        self._since: float | None = None
        self._last_emit = float("-inf")

    def record(self, reason: str, peer: str = "") -> None:
        """Count one failure of ``reason`` from ``peer``; logged with the others at the next flush."""
        with self._lock:
            now = self._clock()
            if not self._counts:
                self._since = now
            self._counts[reason] += 1
            self._last_peer = peer or self._last_peer
            line = self._take(now) if now - self._last_emit >= self.interval else None
        if line:
            self._emit(line)

    def flush(self, force: bool = False) -> None:
        """Log the counts since the last line, at most once per ``interval`` (``force``: now)."""
        with self._lock:
            now = self._clock()
            due = self._counts and (force or now - self._last_emit >= self.interval)
            line = self._take(now) if due else None
        if line:
            self._emit(line)

    def _take(self, now: float) -> str:
        counts, self._counts = self._counts, Counter()
        total = sum(counts.values())
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
        span = now - (self._since if self._since is not None else now)
        self._last_emit = now
        return (f"rejected {total} connection(s) before authentication in {span:.1f}s: {reasons}; "
                f"last peer {self._last_peer or '-'}")
