"""Declared settings and the one read-only Config object built from them.

Each setting is declared once: name, type, default, validator and a one-line doc
(the README's table is generated from this list: ``python -m browserd.config``).
Sources, later ones winning: built-in defaults, the TOML file (``--config`` or
``$BROWSERD_CONFIG``), environment variables ``BROWSERD_<NAME>``, command-line flags.
"""

from __future__ import annotations

import grp
import ipaddress
import json
import os
import tomllib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable

from browserd_client.state import default_state_dir

from .daemon.errors import ConfigError
from .site_policy import check_policy

ENV_PREFIX = "BROWSERD_"
CONFIG_ENV = "BROWSERD_CONFIG"
#: ``BROWSERD_*`` variables that are not settings: the config file's path, and the test
#: suite's size knobs (tests/stress). Any other unknown ``BROWSERD_*`` is an error.
NOT_SETTINGS_ENV = frozenset({CONFIG_ENV, "BROWSERD_SOAK", "BROWSERD_STRESS_SCALE"})
DRIVER_SOURCES = ("system", "webdriver-manager", "grid")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Setting:
    """A declared setting: name, type, default, one-line doc and an optional validator
    (``validate(value) -> error text or None``)."""

    name: str
    type: type
    default: Any
    doc: str
    validate: Callable[[Any], str | None] | None = None  # returns an error text or None

    @property
    def env(self) -> str:
        """Its environment variable: ``BROWSERD_<NAME>``."""
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """Its flag on ``start``/``run``/``restart``: ``--name-with-dashes`` (a bool also
        has ``--no-name``)."""
        return "--" + self.name.replace("_", "-")


def _min(n):
    return lambda v: None if v >= n else f"must be >= {n}"


def _range(lo, hi):
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _choice(*options):
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _group(name):
    if not name:
        return None
    try:
        grp.getgrnam(name)
    except KeyError:
        return "is not a group on this system"
    return None


def _networks(value):
    from .netpolicy import parse_allow

    try:
        parse_allow(value)
    except ValueError as exc:
        return str(exc)
    return None


def _switches(value):
    """Each Chromium argument is a switch; a part that is not was cut off at a comma."""
    for arg in value:
        if not arg.startswith("-"):
            return (f"holds {arg!r}, which is not a Chromium switch (--name[=value]): a value with a comma "
                    f"needs the JSON array form, e.g. [\"--user-agent=a, b\"]")
    return None


def _listen(value):
    if not value:
        return None
    from .metrics import parse_listen

    try:
        parse_listen(value)
    except ValueError as exc:
        return str(exc)
    return None


SETTINGS: tuple[Setting, ...] = (
    Setting("browsers", int, 2, "Number of warm browsers in the pool.", _range(1, 64)),
    Setting("host", str, "127.0.0.1", "Address to listen on (TCP); a loopback address unless "
            "insecure_listen_any is set."),
    Setting("port", int, 0, "TCP port; 0 lets the OS pick a free one (published in the state file).",
            _range(0, 65535)),
    Setting("socket", str, "", "Listen on this Unix socket path instead of TCP."),
    Setting("state_dir", str, "", "State directory: state file, authkey, pidfile, log, profiles. "
            "Default /run/browserd (root), $XDG_RUNTIME_DIR/browserd, or <tmp>/browserd-<uid>."),
    Setting("group", str, "", "Group whose members may use the daemon: the state dir (0750), authkey, "
            "state file (0640) and Unix socket (0660) go to this group. Empty: the daemon's user only "
            "(0700/0600).", _group),
    Setting("chromium", str, "chromium", "Chromium binary (name on PATH or path)."),
    Setting("chromedriver", str, "chromedriver", "chromedriver binary (name on PATH or path)."),
    Setting("driver_source", str, "system", "Where chromedriver comes from: system (PATH), "
            "webdriver-manager (downloads; needs the [wdm] extra and internet) or grid.",
            _choice(*DRIVER_SOURCES)),
    Setting("grid_url", str, "", "Selenium Grid 4 URL when driver_source = grid."),
    Setting("chromium_args", list, [], "Extra Chromium command-line arguments.", _switches),
    Setting("page_load_timeout", float, 30.0, "Seconds a page may take to load.", _min(0.1)),
    Setting("job_timeout", float, 60.0, "Default and maximum seconds for one fetch job (hard deadline).",
            _min(0.1)),
    Setting("queue_wait", float, 0.0, "Optional cap: seconds a job waits for a free browser before 'busy' "
            "(0: up to the job's own deadline).", _min(0)),
    Setting("max_queue", int, 1024, "Jobs that may wait for a browser at once; more get 'busy' with a "
            "retry_after hint and a ticket that keeps their place (0: no limit).", _min(0)),
    Setting("max_connections", int, 256, "Client connections served at once; more get 'busy'.",
            _min(1)),
    Setting("max_pending_handshakes", int, 64, "Connections still authenticating, in total (apart from "
            "max_connections); when full, the oldest silent one is dropped.", _min(1)),
    Setting("max_pending_per_peer", int, 16, "Connections still authenticating per peer (Unix socket: uid; "
            "TCP: remote address); over it, that peer's oldest silent one is dropped.", _min(1)),
    Setting("insecure_listen_any", bool, False, "INSECURE: allow a non-loopback host. Only the handshake is "
            "authenticated; requests and pages then cross the network unencrypted and unauthenticated."),
    Setting("metrics_listen", str, "", "Serve /metrics (Prometheus), /healthz and /readyz over HTTP on "
            "HOST:PORT, e.g. 127.0.0.1:9464 (a loopback host unless insecure_listen_any). Empty: off.",
            _listen),
    Setting("canary_interval", float, 60.0, "Seconds between canary checks of an idle browser (the demo "
            "page, rendered and checked); a browser failing it is replaced (0: off).", _min(0)),
    Setting("backlog", int, 1024, "Listen backlog (the kernel caps it at net.core.somaxconn).", _min(1)),
    Setting("handshake_timeout", float, 5.0, "Seconds a new connection has to authenticate.", _min(0.1)),
    Setting("idle_timeout", float, 300.0, "Seconds an idle client connection is kept open.", _min(0.1)),
    Setting("max_request_bytes", int, 1 << 20, "Largest request frame accepted.", _min(1024)),
    Setting("drain_timeout", float, 30.0, "Seconds 'stop' lets running jobs finish.", _min(0)),
    Setting("start_timeout", float, 60.0, "Seconds to start the browsers and become ready.", _min(1)),
    Setting("recycle_after", int, 500, "Restart a browser after this many jobs (0: never).", _min(0)),
    Setting("recycle_rss_mb", int, 1536, "Restart an idle browser whose process tree RSS passes this (0: never).",
            _min(0)),
    Setting("allowed_schemes", list, ["http", "https"], "URL schemes a job may load."),
    Setting("allow_networks", list, [], "Networks (CIDRs) and host names browsers may reach besides "
            "public addresses, e.g. 127.0.0.1/32 for a local dev server; loopback, private, link-local "
            "and metadata addresses are refused unless listed here.", _networks),
    Setting("site_modules", list, [], "Extra modules to load site classes from."),
    Setting("site_dirs", list, [], "Directories whose *.py files hold site classes (reloaded by "
            "`browserd reload`)."),
    Setting("log_file", str, "", "Daemon log file (default STATE_DIR/browserd.log)."),
    Setting("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR (any case).",
            lambda v: None if str(v).upper() in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}"),
)

_BY_NAME = {s.name: s for s in SETTINGS}
_BY_ENV = {s.env: s for s in SETTINGS}


def setting(name: str) -> Setting:
    """The declared :class:`Setting` called ``name`` (KeyError if none)."""
    return _BY_NAME[name]


def _coerce(setting: Setting, value: Any, source: str) -> Any:
    where = f"{setting.name} (from {source})"
    try:
        if setting.type is bool:
            if isinstance(value, str):
                word = value.strip().lower()
                if word not in _TRUE + _FALSE:
                    raise ValueError(f"expected one of {', '.join(_TRUE + _FALSE)}")
                value = word in _TRUE
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
        elif setting.type is list:
            if isinstance(value, str):
                value = parse_list(value)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("expected a list of strings")
        elif setting.type is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            value = int(value)
        elif setting.type is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            value = float(value)
        else:
            if not isinstance(value, str):
                raise ValueError("expected a string")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is invalid: {exc}") from None
    if setting.validate is not None:
        problem = setting.validate(value)
        if problem:
            raise ConfigError(f"{where}: {value!r} {problem}")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_list(text: str) -> list:
    """A list setting from the environment or a flag: a JSON array when it starts with
    ``[`` (so a value may hold a comma: ``["--user-agent=a, b"]``), else comma-separated."""
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a JSON array: {exc}") from None
        if not isinstance(value, list):
            raise ValueError("expected a JSON array of strings")
        return value
    return [part.strip() for part in text.split(",") if part.strip()]


class Config:
    """Read-only settings. Attribute access: ``config.browsers``; ``config.sources`` says
    where each value came from."""

    __slots__ = ("_values", "sources", "path", "sites", "proxies")

    def __init__(self, values: dict, sources: dict, path: str | None, sites: dict | None = None,
                 proxies: dict | None = None):
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))
        object.__setattr__(self, "sources", MappingProxyType(dict(sources)))
        object.__setattr__(self, "path", path)
        #: ``[sites.NAME]`` blocks of the TOML file: site name -> its settings.
        object.__setattr__(self, "sites", MappingProxyType(dict(sites or {})))
        #: ``[proxies.NAME]`` blocks of the TOML file (validated): pool name -> its table.
        object.__setattr__(self, "proxies", MappingProxyType(dict(proxies or {})))

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("Config is read-only")

    def as_dict(self) -> dict:
        """Every setting's value, as a new dict (name -> value)."""
        return dict(self._values)

    # Derived paths: one place decides where each file lives.
    def path_in_state(self, name: str) -> str:
        """The absolute path of the file ``name`` in the state dir."""
        return os.path.join(self.state_dir, name)

    @property
    def log_path(self) -> str:
        """The log file: ``log_file``, else ``browserd.log`` in the state dir."""
        return self.log_file or self.path_in_state("browserd.log")

    @property
    def group_gid(self) -> int | None:
        """The gid of ``group``, or None when the daemon's files are its user's only."""
        return grp.getgrnam(self.group).gr_gid if self.group else None

    @property
    def profiles_dir(self) -> str:
        """The browsers' working directories: ``browsers/`` in the state dir."""
        return self.path_in_state("browsers")


def load(config_file: str | None = None, env: dict | None = None, flags: dict | None = None) -> Config:
    """Build the Config from defaults, a TOML file, ``BROWSERD_*`` and flags (in that
    order, later ones winning). ``env`` defaults to ``os.environ``; ``flags`` maps
    setting names to values (None: not given). Raises ConfigError naming the setting and
    its source."""
    env = os.environ if env is None else env
    values = {s.name: s.default for s in SETTINGS}
    sources = {s.name: "default" for s in SETTINGS}
    config_file = config_file or env.get(CONFIG_ENV) or None
    site_blocks: dict = {}
    proxy_blocks: dict = {}
    if config_file:
        config_file = os.path.abspath(config_file)
        site_blocks, proxy_blocks = _from_file(config_file, values, sources)
    _from_env(env, values, sources)
    _from_flags(flags or {}, values, sources)
    _resolve_paths(values, sources, config_file)
    _check_listen(values, sources)
    if values["driver_source"] == "grid" and not values["grid_url"]:
        raise ConfigError("driver_source = grid needs grid_url")
    for name, block in site_blocks.items():
        cap = block.get("concurrency", 0)
        if cap > values["browsers"]:
            raise ConfigError(f"{config_file}: [sites.{name}].concurrency = {cap} is more than "
                              f"browsers = {values['browsers']}")
    return Config(values, sources, config_file, site_blocks, proxy_blocks)


def _from_file(config_file: str, values: dict, sources: dict) -> tuple[dict, dict]:
    """The settings of a TOML file into ``values``; returns its ``[sites.*]`` and
    ``[proxies.*]`` blocks."""
    try:
        with open(config_file, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {config_file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
    site_blocks: dict = {}
    proxy_blocks: dict = {}
    for key, value in data.get("browserd", data).items():
        if key == "sites":
            site_blocks = _site_blocks(value, config_file)
        elif key == "proxies":
            from .proxies import load_pools

            try:
                load_pools(value, config_file)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            proxy_blocks = value
        elif key not in _BY_NAME:
            raise ConfigError(f"{config_file}: unknown setting {key!r}")
        else:
            values[key] = _coerce(_BY_NAME[key], value, config_file)
            sources[key] = config_file
    return site_blocks, proxy_blocks


def _from_env(env, values: dict, sources: dict) -> None:
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in NOT_SETTINGS_ENV and name not in _BY_ENV:
            raise ConfigError(f"${name}: unknown setting {name[len(ENV_PREFIX):].lower()!r} "
                              f"(unset it, or see the settings: browserd start --help)")
    for setting in SETTINGS:
        name = setting.env
        if name in env and env[name] != "":
            values[setting.name] = _coerce(setting, env[name], f"${name}")
            sources[setting.name] = f"${name}"


def _from_flags(flags: dict, values: dict, sources: dict) -> None:
    for key, value in flags.items():
        if value is None:
            continue
        if key not in _BY_NAME:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(_BY_NAME[key], value, _BY_NAME[key].flag)
        sources[key] = "flag"


def _resolve_paths(values: dict, sources: dict, config_file: str | None) -> None:
    """Absolute paths now: the daemon changes its working directory to / later."""
    values["state_dir"] = os.path.abspath(values["state_dir"] or default_state_dir())
    for key in ("socket", "log_file"):
        if values[key]:
            values[key] = os.path.abspath(values[key])
    # Relative directories: from the TOML file's directory if set there, else the cwd.
    base = os.path.dirname(config_file) if sources["site_dirs"] == config_file else os.getcwd()
    values["site_dirs"] = [os.path.abspath(os.path.join(base, d)) for d in values["site_dirs"]]
    for directory in values["site_dirs"]:
        if not os.path.isdir(directory):
            raise ConfigError(f"site_dirs (from {sources['site_dirs']}): {directory} is not a directory")


def _check_listen(values: dict, sources: dict) -> None:
    """Neither the protocol nor /metrics listens beyond loopback unless insecure_listen_any."""
    if not values["socket"] and not values["insecure_listen_any"] and not is_loopback(values["host"]):
        raise ConfigError(
            f"host (from {sources['host']}): {values['host']!r} is not a loopback address; browserd's "
            "protocol is not encrypted after the handshake: set insecure_listen_any = true to listen there anyway")
    if values["metrics_listen"] and not values["insecure_listen_any"]:
        from .metrics import parse_listen

        if not is_loopback(parse_listen(values["metrics_listen"])[0]):
            raise ConfigError(
                f"metrics_listen (from {sources['metrics_listen']}): {values['metrics_listen']!r} is not on a "
                "loopback address; /metrics is not authenticated: set insecure_listen_any = true to listen there anyway")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine: a loopback IP literal or ``localhost``
    (other names are not resolved here; they would need insecure_listen_any)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


# -- what a restart starts again -------------------------------------------------------------


def _site_blocks(value, config_file: str) -> dict:
    """``[sites.NAME]`` tables, each checked against the per-site settings."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(f"{config_file}: 'sites' must hold one table per site, e.g. [sites.shop]")
    blocks = {}
    for name, block in value.items():
        try:
            blocks[name] = check_policy(dict(block), f"[sites.{name}]")
        except ValueError as exc:
            raise ConfigError(f"{config_file}: {exc}") from None
    return blocks


def markdown_table() -> str:
    """The README's settings table (``python -m browserd.config`` prints it)."""
    rows = ["| setting | env | flag | default | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = s.default if s.default not in ("", []) else "—"
        rows.append(f"| `{s.name}` | `{s.env}` | `{s.flag}` | `{default}` | {s.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table())
