"""The ``browserd`` command line, one module per command group:

- :mod:`.lifecycle`: start, run, stop, restart, reload
- :mod:`.status`: status, metrics, sites
- :mod:`.fetch`: fetch, demo; :mod:`.batch`: ``fetch -i`` (many URLs into a directory);
  :mod:`.options`: fetch's job option flags and their output files
- :mod:`.parser`: the argparse tree; :mod:`.common`: what the commands share

Exit codes are :class:`browserd.daemon.errors.ExitCode` (README "Exit codes").
"""

from __future__ import annotations

import sys

from ..daemon.errors import ExitCode, HaltServer
from .common import die
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv=None) -> ExitCode:
    """Run one command (``argv``: the arguments, default ``sys.argv[1:]``) and return its
    exit status; a fatal error prints its one line and returns its own status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HaltServer as exc:  # config, state dir, start-up, refused signals: each knows its status
        return die(exc.line(), exc.exit_status)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
