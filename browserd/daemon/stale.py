"""The stale-daemon sweep: end what a daemon that died (SIGKILL, a crash) left behind.

Only browsers recorded in the private ``browsers.json`` and inside our own (verified)
profiles directory are ended, by process group and working directory, never by name.
"""

from __future__ import annotations

import logging
import os
import shutil

from browserd_client.state import STATE_FILE

from ..browser import kill_recorded, processes_of
from . import statedir

logger = logging.getLogger(__name__)


def sweepable(record, config) -> bool:
    """Whether a browser record may steer the stale-daemon sweep: its working dir must lie
    inside OUR (verified) profiles dir, and a Grid session must be on OUR configured Grid.
    A planted record can then only point at our own browsers."""
    if not isinstance(record, dict):
        return False
    if record.get("grid_url") or record.get("session_id"):
        return bool(config.grid_url) and record.get("grid_url") == config.grid_url
    workdir, pgid = record.get("workdir"), record.get("pgid", -1)
    return (isinstance(workdir, str) and os.path.isabs(workdir) and isinstance(pgid, int)
            and statedir.inside(workdir, config.profiles_dir))


def clean_stale(config, stale_pid: int | None) -> int:
    """End what a dead daemon left: browsers it recorded in the private ``browsers.json``
    (by process group and working dir, never by name, and only records inside our
    profiles dir), and any process still using our profiles directory. The state dir has
    passed :mod:`browserd.daemon.statedir`'s checks before this runs."""
    killed = 0
    data = statedir.read_json(config.path_in_state(statedir.BROWSERS_FILE), {})
    records = data.get("browsers", []) if isinstance(data, dict) else []
    for record in records:
        if not sweepable(record, config):
            logger.warning("ignoring a browser record outside %s: %.200r", config.profiles_dir, record)
            continue
        killed += kill_recorded(record)
    for proc in processes_of(-1, config.profiles_dir + os.sep):
        try:
            proc.kill()
            killed += 1
        except Exception:
            pass
    for name in (STATE_FILE, statedir.BROWSERS_FILE):
        try:
            os.unlink(config.path_in_state(name))
        except FileNotFoundError:
            pass
    shutil.rmtree(config.profiles_dir, ignore_errors=True)
    if stale_pid or killed:
        logger.warning("cleaned up after a dead daemon (pid %s): %d leftover browser processes ended",
                       stale_pid, killed)
    return killed
