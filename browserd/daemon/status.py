"""The ``status`` reply: what ``browserd status`` prints, ``status --json`` shows, the
``status`` op returns and /metrics is rendered from (field by field in docs/status.md)."""

from __future__ import annotations

import os
import time

from browserd_client import protocol

from .. import __version__
from .launch import daemon_user


def build_status(arbiter) -> dict:
    """The daemon's status, a JSON object (times in seconds, wall-clock times as Unix
    seconds); safe to call from any thread (each part is read under its owner's lock):

    - ``running``: always true (a CLI that finds no daemon answers ``false`` itself)
    - ``pid``, ``version``, ``protocol`` (wire protocol version): int, str, int
    - ``address``: where clients connect, ``"host:port"`` or ``"unix:/path"``
    - ``state_dir``, ``config_file`` (None: defaults only), ``log``: absolute paths
    - ``uptime``: seconds since the daemon started (3 decimals)
    - ``user``: ``"name (uid N)"`` the daemon runs as
    - ``sandbox``: ``{"on": bool, "reason": str}``, Chromium's sandbox and why
    - ``draining``: true once a stop signal arrived (new fetches get ``shutting_down``)
    - ``browsers``: the pool's snapshot (:meth:`browserd.pool.Pool.snapshot`): ``size``,
      ``total``, ``idle``, ``busy``, ``starting``, ``resetting``, ``waiters``,
      ``active_jobs``, ``sites_in_use`` and one entry per browser
    - ``jobs``: ``{"served", "failed", "by_outcome": {outcome: count}}`` since start
    - ``events``: ``{event: count}``: replaced, recycled, retried, connections, ...
    - ``latency``: ``{"p50", "p99", "samples"}`` of served jobs' seconds (None before one)
    - ``queue_wait``: ``{"p50", "p99", "max"}`` seconds a job waited for a browser
    - ``reset``: ``{"p50", "p99", "samples"}`` seconds of the reset after each job, and
      ``"unproven"``: browsers replaced because a reset could not prove them clean
    - ``connections``: authenticated client connections open now
    - ``sites``: site class names, sorted; ``site_problems``: one line per module that
      failed to load; ``sites_generation``: +1 on each reload (SIGHUP)
    - ``egress_tunnels``: CONNECT tunnels the egress proxy holds open now
    - ``demo_url``, ``metrics_url``: the daemon's demo page and /metrics, or None
    """
    config, stats = arbiter.config, arbiter.stats
    snap = stats.snapshot()
    registry, server, egress = arbiter.registry, arbiter.server, arbiter.egress
    return {
        "running": True,
        "pid": os.getpid(), "version": __version__, "protocol": protocol.PROTOCOL_VERSION,
        "address": protocol.format_address(arbiter.address), "state_dir": config.state_dir,
        "config_file": config.path, "log": config.log_path,
        "uptime": round(time.time() - stats.started, 3),
        "user": daemon_user(),
        "sandbox": {"on": arbiter.sandbox[0], "reason": arbiter.sandbox[1]},
        "draining": arbiter.draining,
        "browsers": arbiter.pool.snapshot(), "jobs": snap["jobs"], "events": snap["events"],
        "latency": snap["latency"], "queue_wait": snap["queue_wait"], "reset": snap["reset"],
        "connections": server.connection_count() if server else 0,
        "sites": sorted(registry.names()), "site_problems": registry.problems,
        "sites_generation": registry.generation,
        "egress_tunnels": egress.tunnel_count() if egress is not None else 0,
        "demo_url": arbiter.pages.url if arbiter.pages else None,
        "metrics_url": arbiter.metrics.url if arbiter.metrics else None,
    }
