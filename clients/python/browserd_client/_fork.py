"""A client's connection and locks belong to the process that made them.

After ``fork()`` (``os.fork``, or a ``multiprocessing`` pool or ``ProcessPoolExecutor`` with
the fork start method) the child holds a copy of every client object, with the parent's
connection and locks in it. Two processes on one socket read each other's replies, and a
lock that a parent thread held at the fork stays held forever in the child. So every client
object is a :class:`ProcessBound` and, in a child, drops what its parent owned before any
use:

* right after the fork, from ``os.register_at_fork(after_in_child=...)``, while the child
  still has a single thread;
* and at the start of each call, by comparing pids, for a child made without the at-fork
  hooks (a ``fork()`` from C).

Dropping an inherited socket closes this process's descriptor and nothing else: no
``shutdown()`` (that would end the parent's connection as well) and no byte read or written.
"""

from __future__ import annotations

import os
import weakref

_live: weakref.WeakSet = weakref.WeakSet()


class ProcessBound:
    """Base of every client object. A subclass calls :meth:`_bind_to_process` once its
    ``__init__`` has made its state, and implements :meth:`_after_fork_in_child`; its calls
    start with :meth:`_check_process`."""

    def _bind_to_process(self) -> None:
        self._pid = os.getpid()
        _live.add(self)

    def _check_process(self) -> None:
        """In a process other than the one that made our state: reset it, once."""
        pid = os.getpid()
        if self._pid != pid:
            self._pid = pid
            self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        """Forget the parent's connection (closing only our descriptor) and make new locks."""
        raise NotImplementedError


def _reset_all_in_child() -> None:
    for obj in list(_live):
        obj._check_process()


if hasattr(os, "register_at_fork"):  # every POSIX Python; there is no fork() elsewhere
    os.register_at_fork(after_in_child=_reset_all_in_child)
