"""The daemon process: everything from ``browserd start`` to the last exit.

- :mod:`.errors`: the exit codes (a documented contract) and the one tree of fatal errors,
  each carrying its exit status.
"""
