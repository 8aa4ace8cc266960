"""Upstream proxies a job's traffic can go through: parsing, redaction, named pools.

A job names its upstream with the job option ``proxy`` (a URL) or ``proxy_pool`` (a
``[proxies.NAME]`` block of the config), or its site class names a pool (class policy
``proxy_pool``). The egress proxy (:mod:`browserd.egress`) then chains every connection of
that job, and of that job only, through it; the protocol work toward the upstream
(HTTP ``CONNECT``, SOCKS4, SOCKS5 with user/password) is python-socks'.

A proxy's password never leaves this module in clear: :meth:`Upstream.redacted` is what
logs, notes, ``status`` and errors show (``socks5://user:***@host:port``).

Config (TOML)::

    [proxies.residential]
    urls = ["socks5://u:p@10.0.0.5:1080", "http://u:p@10.0.0.6:3128"]
    rotation = "round-robin"        # or "random"
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = ("http", "socks4", "socks5")
ROTATIONS = ("round-robin", "random")
MAX_URL = 2048


@dataclass(frozen=True)
class Upstream:
    """One upstream proxy. ``scheme`` is one of :data:`SCHEMES`."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def redacted(self) -> str:
        """The proxy as it may be shown: the password replaced by ``***``."""
        auth = ""
        if self.username is not None:
            auth = self.username + (":***" if self.password is not None else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}"

    def __repr__(self) -> str:  # never the password, even in a traceback
        return f"Upstream({self.redacted()!r})"


def parse_upstream(url, where: str = "proxy") -> Upstream:
    """A proxy URL (``http://``, ``socks4://``, ``socks5://``, optional ``user:password@``,
    port required) → :class:`Upstream`. Raises ValueError naming ``where``; the message
    never contains the password."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise ValueError(f"{where} must be a proxy URL such as socks5://host:1080")
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise ValueError(f"{where} contains control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{where}: malformed proxy URL") from None
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise ValueError(f"{where}: https:// proxies (TLS to the proxy) are not supported; "
                         f"use http://, socks4:// or socks5://")
    if scheme not in SCHEMES:
        raise ValueError(f"{where}: scheme must be one of {', '.join(SCHEMES)}")
    if not parts.hostname or port is None:
        raise ValueError(f"{where}: a proxy URL needs a host and a port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{where}: a proxy URL has no path, query or fragment")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    for value in (username, password):
        if value is not None and any(ord(c) < 0x20 or c == "\x7f" for c in value):
            raise ValueError(f"{where}: the user name or password contains control characters")
    return Upstream(scheme, parts.hostname, port, username, password)


class ProxyPool:
    """A named list of upstreams and how to pick one per job. Thread-safe."""

    def __init__(self, name: str, upstreams: list[Upstream], rotation: str = "round-robin"):
        self.name = name
        self.upstreams = tuple(upstreams)
        self.rotation = rotation
        self._cycle = itertools.cycle(self.upstreams)
        self._lock = threading.Lock()

    def pick(self) -> Upstream:
        """The upstream for the next job: at random, or the next in turn (thread-safe)."""
        if self.rotation == "random":
            return random.choice(self.upstreams)
        with self._lock:
            return next(self._cycle)

    def describe(self) -> dict:
        """``{"rotation", "proxies"}`` for ``status``, with credentials redacted."""
        return {"rotation": self.rotation, "proxies": [u.redacted() for u in self.upstreams]}


def load_pools(blocks, where: str) -> dict[str, ProxyPool]:
    """``[proxies.NAME]`` tables → pools. Raises ValueError naming ``where`` and the key."""
    if not isinstance(blocks, dict) or not all(isinstance(v, dict) for v in blocks.values()):
        raise ValueError(f"{where}: 'proxies' must hold one table per pool, e.g. [proxies.office]")
    pools = {}
    for name, block in blocks.items():
        at = f"{where}: [proxies.{name}]"
        unknown = set(block) - {"urls", "rotation"}
        if unknown:
            raise ValueError(f"{at}: unknown key(s) {', '.join(sorted(unknown))} (known: urls, rotation)")
        urls = block.get("urls")
        if not isinstance(urls, list) or not urls:
            raise ValueError(f"{at}.urls must be a non-empty list of proxy URLs")
        rotation = block.get("rotation", "round-robin")
        if rotation not in ROTATIONS:
            raise ValueError(f"{at}.rotation must be one of {', '.join(ROTATIONS)}")
        pools[name] = ProxyPool(name, [parse_upstream(u, f"{at}.urls[{i}]") for i, u in enumerate(urls)],
                                rotation)
    return pools
