"""Exponential backoff with full jitter, bounded by attempts and by a deadline.

The shape of urllib3's ``Retry``: the n-th wait is ``uniform(0, min(cap, base * 2**n))``
("full jitter"), so a burst of clients that were refused together spread out instead of
coming back together.

:class:`RetryState` decides, without any I/O, what a call does after each failed try;
the blocking and the asyncio client each run it in a loop of their own that only sends,
sleeps and raises.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from dataclasses import dataclass

from .errors import BrowserdError, NotRunning, Unavailable

#: Failures of the transport that say nothing about the request: safe to retry.
TRANSIENT = (ConnectionError, EOFError, FileNotFoundError, socket.timeout, TimeoutError)


@dataclass(frozen=True)
class Backoff:
    """A retry policy (immutable, so one may be shared by clients and threads): how many
    tries, how long each wait may be, and for how long in all. Times are seconds."""

    attempts: int = 8          #: tries in all, the first included
    base: float = 0.05         #: seconds; the cap of the first wait
    cap: float = 2.0           #: no single wait is longer than this
    deadline: float = 30.0     #: seconds from the first try; no try starts after it
    #: seconds from the first try during which a daemon that is absent (no state file: not
    #: started yet, or restarting) is waited for; None: up to ``deadline``; 0: not at all.
    #: These tries do not count against ``attempts``: a restart takes seconds.
    wait_for_daemon: float | None = None

    def delays(self, rng: random.Random | None = None):
        """Yield the wait before each retry (``attempts - 1`` of them at most)."""
        rng = rng or random
        for n in range(self.attempts - 1):
            yield rng.uniform(0, min(self.cap, self.base * (2 ** n)))


@dataclass(frozen=True)
class Step:
    """What :meth:`RetryState.failed` tells the loop to do next: with an ``error``, give
    up and raise it; else sleep ``delay`` seconds and send again."""

    delay: float = 0.0
    error: BaseException | None = None


def absent(exc: BaseException) -> bool:
    """Whether a try failed because the daemon's state file is missing (not started yet,
    or between the stop and the start of a restart)."""
    return isinstance(exc, NotRunning) and bool(exc.details.get("missing"))


class RetryState:
    """The tries of one call under a :class:`Backoff`, as decisions without I/O::

        state = RetryState(policy)
        while state.next_try():          # False once the deadline passed during a wait
            try:
                return send(first_try=state.tries == 1)   # success: done
            except Exception as exc:
                step = state.failed(exc)
            if step.error is not None:
                raise step.error         # not retryable, or the budget is spent
            sleep(step.delay)
        raise state.give_up()

    Retried: a :class:`BrowserdError` that says it is ``retryable`` (``busy``,
    ``shutting_down``, ``unavailable``; a ``busy`` reply's ``retry_after`` hint is the
    least wait, and its ``ticket`` goes with the next try) and the ``transient`` failures of the transport
    (refused, reset or cut-off connections, timeouts while connecting); a missing state
    file (:class:`NotRunning`: a start-up or a restart) is waited for up to
    ``wait_for_daemon``, beyond ``attempts``; anything else is raised at once. Every wait is full jitter under the exponential cap, never past
    the deadline; the first try always starts. ``clock`` and ``rng`` are for tests.
    """

    def __init__(self, policy: Backoff, transient: tuple = TRANSIENT, *, op: str = "call",
                 logger: logging.Logger | None = None, clock=time.monotonic, rng=None):
        self.policy, self.transient, self.op = policy, transient, op
        self._logger = logger or logging.getLogger(__name__)
        self._clock = clock
        self._start = clock()
        self._delays = policy.delays(rng)
        self._rng = rng or random
        self._absent = 0                            #: tries that found no daemon
        self.tries = 0                              #: tries started so far
        self.last: BaseException | None = None      #: the last failure that was retryable
        #: The ticket of the last ``busy`` reply: sent back, it keeps the call's place in
        #: the daemon's queue (see :meth:`retry_args`).
        self.ticket: str | None = None

    def remaining(self) -> float:
        """Seconds left before the deadline (zero or less once it passed)."""
        return self.policy.deadline - (self._clock() - self._start)

    def next_try(self) -> bool:
        """Count a try about to start: the first always, later ones only before the deadline."""
        if self.tries and self.remaining() <= 0:
            return False
        self.tries += 1
        return True

    def failed(self, exc: BaseException) -> Step:
        """The current try raised ``exc``: wait and send again, or give up."""
        if absent(exc):
            return self._wait_for_daemon(exc)
        retryable = exc.retryable if isinstance(exc, BrowserdError) else isinstance(exc, self.transient)
        if not retryable:
            return Step(error=exc)
        self.last = exc
        self._logger.debug("browserd %s try %d failed: %r", self.op, self.tries, exc)
        delay = next(self._delays, None)
        remaining = self.remaining()
        if delay is None or remaining <= 0:
            return Step(error=self.give_up())
        details = exc.details if isinstance(exc, BrowserdError) else {}
        if isinstance(details.get("ticket"), str):
            self.ticket = details["ticket"]
        hint = details.get("retry_after")
        if isinstance(hint, (int, float)) and not isinstance(hint, bool) and hint > 0:
            # The daemon's hint, with a little jitter so refused clients do not return together.
            delay = max(delay, float(hint) * self._rng.uniform(1.0, 1.1))
        return Step(delay=min(delay, remaining))

    def retry_args(self, op: str, args: dict) -> dict:
        """The arguments of the next try: a fetch refused ``busy`` sends its ticket back."""
        if op == "fetch" and self.ticket is not None:
            return dict(args, ticket=self.ticket)
        return args

    def _wait_for_daemon(self, exc: BaseException) -> Step:
        """No state file: the daemon is starting or restarting (or not running at all).
        Wait for it, with the same backoff, until ``wait_for_daemon`` (else the deadline)
        passes; then it is not running."""
        window = self.policy.deadline if self.policy.wait_for_daemon is None else \
            min(self.policy.wait_for_daemon, self.policy.deadline)
        left = window - (self._clock() - self._start)
        if left <= 0:
            return Step(error=exc)
        self.last = exc
        self._logger.debug("browserd %s try %d: no daemon yet: %s", self.op, self.tries, exc)
        delay = self._rng.uniform(0, min(self.policy.cap, self.policy.base * (2 ** min(self._absent, 30))))
        self._absent += 1
        return Step(delay=min(delay, left))

    def give_up(self) -> BaseException:
        """The error that ends the call: the daemon's last refusal as it was, else
        :class:`Unavailable` caused by the last failure of the transport."""
        if isinstance(self.last, BrowserdError):
            return self.last
        error = Unavailable(f"browserd unreachable after {self.tries} tries: {self.last!r}")
        error.__cause__ = self.last   # as ``raise ... from last``
        return error
