"""What every command of the CLI shares: one-line errors, the configuration from the
command line, and a client of the daemon that says "not running" at once."""

from __future__ import annotations

import sys

from browserd_client import Backoff, Client
from browserd_client.errors import BrowserdError, NotRunning, PermissionDenied

from .. import config as configmod
from ..daemon import statedir
from ..daemon.errors import ExitCode

#: A command of the CLI says "not running" at once (exit 3) rather than wait for a daemon
#: to appear; one that is there is retried like any client's call.
CLI_RETRY = Backoff(deadline=10.0, wait_for_daemon=0)


def die(message: str, code: ExitCode) -> ExitCode:
    """Print ``browserd: message`` to stderr and return ``code``."""
    print(f"browserd: {message}", file=sys.stderr)
    return code


def client_failure(exc: BrowserdError, what: str, not_running_hint: str = "") -> ExitCode:
    """The one mapping of a failed call to the daemon to a message and an exit code:
    not running (3), not allowed to read the key (77), anything else (1)."""
    if isinstance(exc, NotRunning):
        return die(f"{exc}{not_running_hint}", ExitCode.NOT_RUNNING)
    if isinstance(exc, PermissionDenied):
        return die(str(exc), ExitCode.NO_PERMISSION)
    return die(f"{what} failed: {exc.code}: {exc}", ExitCode.FAILURE)


def setting_flags(args) -> dict:
    """The settings given as flags on this command line (name -> value)."""
    return {s.name: getattr(args, s.name) for s in configmod.SETTINGS if getattr(args, s.name, None) is not None}


def load_config(args) -> configmod.Config:
    """The configuration of this command line: ``--config`` (or $BROWSERD_CONFIG), the
    environment, then the setting flags. Raises ConfigError (78)."""
    return configmod.load(args.config, flags=setting_flags(args))


def verified(config) -> None:
    """A client command run by the state dir's owner checks the dir like the daemon does
    (raises StateDirError); another user (a ``group`` member) relies on the daemon's."""
    if statedir.owned_by_us(config.state_dir):
        statedir.verify(config.state_dir)


def client(config, timeout: float = 60.0) -> Client:
    """A client of the daemon of ``config`` (state dir checked first), with
    :data:`CLI_RETRY`; ``timeout`` seconds per call."""
    verified(config)
    return Client(state_dir=config.state_dir, timeout=timeout, retry=CLI_RETRY)


def duration(seconds: float) -> str:
    """``1h02m03s`` or ``2m03s``."""
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
