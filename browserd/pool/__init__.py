"""The pool of warm browsers: fair checkout, hard deadlines, reset, replacement.

Checkout is first-come first-served: every job queues a waiter of its own, and whenever
a browser comes free the oldest waiter that may take one gets it (a plain ``queue.Queue``
lets the thread that checks in take the browser straight back: STYLE trap 11). A waiter
may not take one while its site uses its ``concurrency`` cap of browsers; later waiters
of other sites are served meanwhile.

Session sites (``keep_session``) own the browsers they used: those keep the site's
cookies and storage, serve the site's jobs first, and are wiped before any other site's
job may use one (only when no clean browser is idle). A job's browser is only used by
that job's thread; aborting a job (deadline or client gone) interrupts its page load
and, if the job's thread does not return, kills the browser's processes, which makes
the blocked WebDriver call fail at once; the browser is then replaced in the background.

Modules (the :class:`Pool` class is assembled from one mixin per module; they share the
attributes set in ``Pool.__init__`` and the pool's one lock):

- :mod:`.states` — a browser's lifecycle: states, allowed transitions, the table.
- :mod:`.pool` — :class:`Pool`: start, close, status figures.
- :mod:`.checkout` — the fair queue, ``busy`` tickets, lending and checking in.
- :mod:`.execution` — one job on its own thread under a deadline, as named steps.
- :mod:`.context` — :class:`~.context.JobContext` and the per-job options seam.
- :mod:`.siteprep` — the site's hooks and session wipes around a job.
- :mod:`.document` — the main document's metadata, body and downloads.
- :mod:`.upkeep` — reset, replacement, recycling, health checks, canaries.
"""

from .checkout import Lease
from .execution import ClientGone
from .pool import Pool
from .states import BrowserState, IllegalTransition

__all__ = ["BrowserState", "ClientGone", "IllegalTransition", "Lease", "Pool"]
