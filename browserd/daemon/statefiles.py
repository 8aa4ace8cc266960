"""The files a serving daemon keeps in its state dir, besides the pidfile and the key:

- ``state.json`` (0600, 0640 to ``group``): only what a client needs (pid, version,
  protocol, address, started_at);
- ``browsers.json`` (0600, never shared): the browser records a later start needs to end
  these browsers if this daemon dies (ports and session ids stay private);
- ``config.json`` (0600): what ``restart`` starts again (a Grid URL may hold a password).
"""

from __future__ import annotations

import json
import os

from browserd_client import protocol
from browserd_client.state import STATE_FILE

from .. import __version__
from ..config import SETTINGS, Config, ConfigError, load
from . import statedir


class StateFiles:
    """Writes and removes the serving daemon's files (Arbiter's thread only)."""

    def __init__(self, config):
        self.config = config
        self._records: list | None = None

    def write(self, address: dict, started_at: float, records: list) -> None:
        """All three files, once the daemon serves."""
        self.update_records(records)
        statedir.write_json(self.config.path_in_state(statedir.CONFIG_FILE), config_record(self.config))
        statedir.write_json(self.config.path_in_state(STATE_FILE), {
            "pid": os.getpid(), "version": __version__, "protocol": protocol.PROTOCOL_VERSION,
            "address": address, "started_at": started_at,
        }, self.config.group_gid)

    def update_records(self, records: list) -> None:
        """``browsers.json``, when the records changed since the last write."""
        if records == self._records:
            return
        self._records = records
        statedir.write_json(self.config.path_in_state(statedir.BROWSERS_FILE),
                            {"pid": os.getpid(), "browsers": records})

    def remove(self) -> None:
        """A clean stop leaves only the key and the log (``restart`` read config.json
        before stopping; after a crash it stays, for the restart that cleans up)."""
        for name in (STATE_FILE, statedir.BROWSERS_FILE, statedir.CONFIG_FILE):
            try:
                os.unlink(self.config.path_in_state(name))
            except FileNotFoundError:
                pass


def config_record(config: Config) -> dict:
    """The sources of ``config`` that a restart must repeat: the config file (re-read at the
    restart, so edits to it apply) and every value set by a flag or an environment
    variable, as resolved (absolute paths). Written by the daemon to the private
    ``config.json`` of its state dir (it may hold secrets, e.g. a Grid URL's password)."""
    env, flags = {}, {}
    for setting in SETTINGS:
        source, value = config.sources[setting.name], config._values[setting.name]
        if source == "flag":
            flags[setting.name] = value
        elif source.startswith("$"):
            env[setting.env] = _env_text(value)
    return {"config_file": config.path, "env": env, "flags": flags}


def _env_text(value) -> str:
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def config_from_record(data, state_dir: str) -> Config:
    """The Config a daemon recorded with :func:`config_record`, loaded again (``state_dir``: where
    the record was found, used unless the record names one)."""
    if not (isinstance(data, dict) and isinstance(data.get("env"), dict) and isinstance(data.get("flags"), dict)
            and (data.get("config_file") is None or isinstance(data["config_file"], str))):
        raise ConfigError(f"the recorded configuration in {state_dir} is garbled; "
                          f"give the configuration again (--config FILE, flags)")
    env = {str(k): str(v) for k, v in data["env"].items()}
    flags = dict(data["flags"])
    if "BROWSERD_STATE_DIR" not in env:
        flags.setdefault("state_dir", state_dir)
    return load(data["config_file"], env=env, flags=flags)
