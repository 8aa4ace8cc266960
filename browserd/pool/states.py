"""A pooled browser's lifecycle as a state machine (supervisor's ``ProcessStates`` and
``change_state``): named states, the allowed transitions, and one :meth:`BrowserTable.change`
that checks each transition and logs it.

The pool keeps no sets or counters beside the states: the idle queue, the number of
browsers starting or resetting, and the browsers each site holds are all read from the
table. Every method of :class:`BrowserTable` must be called with the pool's lock held
(asserted)::

    STARTING --> IDLE <------------------+---------------+
       |          |  \\                  |               |
       |          |   +--> PROBING ------+--> RESETTING -+
       |          v         |                 ^   |
       |        LEASED -----|-----------------+   |
       |          |  \\      |                     |
       |          |   +-----+--> REPLACING <------+      (broken: killed, a new one starts)
       |          +------------> RECYCLING               (planned: IDLE or LEASED only)
       v                              |
      DEAD <--------------------------+   (and from every state but DEAD: the pool closed)
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections import Counter

logger = logging.getLogger(__name__)


class BrowserState(str, enum.Enum):
    """Where a browser is in its life, as the pool sees it."""

    STARTING = "starting"    # being launched; not lent yet
    IDLE = "idle"            # in the pool, clean, ready to lend
    LEASED = "leased"        # checked out: only its job's thread uses the driver
    RESETTING = "resetting"  # its job ended; the reset runs (its site's slot is still held)
    PROBING = "probing"      # out of the idle queue for a health check (canary, Grid keep-alive)
    REPLACING = "replacing"  # broken: being killed; a replacement starts
    RECYCLING = "recycling"  # planned end (recycle_after, RSS): being stopped; a replacement starts
    DEAD = "dead"            # out of the pool for good (and out of the table)


S = BrowserState
#: state -> the states it may change to.
TRANSITIONS: dict[BrowserState, frozenset] = {
    S.STARTING: frozenset({S.IDLE, S.DEAD}),
    S.IDLE: frozenset({S.LEASED, S.PROBING, S.REPLACING, S.RECYCLING, S.DEAD}),
    S.LEASED: frozenset({S.RESETTING, S.REPLACING, S.RECYCLING, S.DEAD}),
    S.RESETTING: frozenset({S.IDLE, S.REPLACING, S.DEAD}),
    S.PROBING: frozenset({S.IDLE, S.RESETTING, S.REPLACING, S.DEAD}),
    S.REPLACING: frozenset({S.DEAD}),
    S.RECYCLING: frozenset({S.DEAD}),
    S.DEAD: frozenset(),
}
#: States of a browser that counts as one of the pool's (``total`` in the status).
IN_SERVICE = frozenset({S.IDLE, S.LEASED, S.RESETTING, S.PROBING})
#: States in which a browser holds the slot of the site it was lent to.
HOLDS_SITE = frozenset({S.LEASED, S.RESETTING})


class IllegalTransition(RuntimeError):
    """A change of state the machine does not allow (a bug in the pool, never the user's)."""


class _Entry:
    __slots__ = ("browser", "state", "since", "site")

    def __init__(self, browser, state: BrowserState, since: int):
        self.browser, self.state, self.since = browser, state, since
        self.site: str | None = None  # the site it is lent to (LEASED, RESETTING)


class BrowserTable:
    """Every browser of one pool that is not DEAD, with its state.

    Not thread-safe by itself: every method asserts that ``lock`` (the pool's) is held,
    and reads and changes happen under it. Browsers are kept in the order they were
    added; :meth:`in_state` lists them in the order they entered the state (so the idle
    queue is longest idle first)."""

    def __init__(self, lock):
        self._lock = lock
        self._entries: dict[str, _Entry] = {}
        self._seq = itertools.count()

    def _held(self) -> None:
        if not self._lock.locked():
            raise AssertionError("BrowserTable used without the pool's lock")

    def add(self, browser) -> None:
        """Register a new browser as STARTING. Raises ``IllegalTransition`` if its id is known."""
        self._held()
        if browser.id in self._entries:
            raise IllegalTransition(f"browser {browser.id} is already in the pool")
        self._entries[browser.id] = _Entry(browser, S.STARTING, next(self._seq))
        logger.debug("browser=%s -> starting", browser.id)

    def change(self, browser, new: BrowserState, reason: str = "", site: str | None = None) -> BrowserState:
        """Move ``browser`` to ``new`` (``site``: the site it is lent to, for LEASED) and
        return the state it left. DEAD removes it from the table. Raises
        ``IllegalTransition`` if the browser is not in the table or the move is not in
        :data:`TRANSITIONS`."""
        self._held()
        entry = self._entries.get(browser.id)
        if entry is None or entry.browser is not browser:
            raise IllegalTransition(f"browser {browser.id} is not in the pool (-> {new.value})")
        old = entry.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"browser {browser.id}: {old.value} -> {new.value} is not allowed")
        entry.state, entry.since = new, next(self._seq)
        if new is S.LEASED:
            entry.site = site
        elif new not in HOLDS_SITE:
            entry.site = None
        if new is S.DEAD:
            del self._entries[browser.id]
        logger.debug("browser=%s %s -> %s%s", browser.id, old.value, new.value, f" ({reason})" if reason else "")
        return old

    def state(self, browser) -> BrowserState:
        """The browser's state; DEAD for one not (or no longer) in the table."""
        self._held()
        entry = self._entries.get(browser.id)
        return entry.state if entry is not None and entry.browser is browser else S.DEAD

    def site_of(self, browser) -> str | None:
        """The site the browser is lent to (while LEASED or RESETTING), else None."""
        self._held()
        entry = self._entries.get(browser.id)
        return entry.site if entry is not None else None

    def in_state(self, *states: BrowserState) -> list:
        """Browsers in any of ``states``, in the order they entered it (oldest first)."""
        self._held()
        entries = sorted((e for e in self._entries.values() if e.state in states), key=lambda e: e.since)
        return [e.browser for e in entries]

    def count(self, *states: BrowserState) -> int:
        """How many browsers are in any of ``states``."""
        self._held()
        return sum(1 for e in self._entries.values() if e.state in states)

    def all(self, states=IN_SERVICE) -> list:
        """Browsers in ``states`` (default: in service) in the order they were added."""
        self._held()
        return [e.browser for e in self._entries.values() if e.state in states]

    def sites_in_use(self) -> Counter:
        """site name -> browsers it holds (lent to its jobs, or resetting after one)."""
        self._held()
        return Counter(e.site for e in self._entries.values() if e.state in HOLDS_SITE and e.site is not None)
