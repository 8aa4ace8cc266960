"""Request dispatch: one decoded frame of an authenticated connection in, one reply
frame out (``fetch`` goes to the pool; ``ping``, ``status``, ``metrics``, ``sites``
are answered here). Every client-supplied value is escaped before it is logged."""

from __future__ import annotations

import base64
import logging
import os
import socket
import time

from browserd_client import protocol
from browserd_client.errors import BadRequest, BrowserdError, FrameTooLarge, Internal, ShuttingDown, UnknownOp

from .. import __version__
from ..jobs import parse_fetch
from ..logsafe import safe
from .client_watch import ClientWatch

logger = logging.getLogger(__name__)


class _ClientGone(Exception):
    """The client left while its job ran: there is nobody to answer."""


class Requests:
    """Answers the requests of every connection (called from the connection threads;
    ``registry`` is replaced whole on a reload, so a job keeps the one it started with).

    ``status_provider() -> dict`` gives the ``status`` reply, ``metrics_provider() ->
    str`` the Prometheus text; ``proxy_pools`` maps ``[proxies.NAME]`` to its pool."""

    def __init__(self, config, pool, registry, stats, status_provider, metrics_provider=lambda: "",
                 proxy_pools: dict | None = None):
        self.config = config
        self.pool = pool
        self.registry = registry
        self.stats = stats
        self.status_provider = status_provider
        self.metrics_provider = metrics_provider
        self.proxy_pools: dict = proxy_pools or {}
        #: set by :meth:`Server.begin_drain`: new fetches get ``shutting_down``
        self.draining = False
        self.watch = ClientWatch(stats)

    def start(self) -> None:
        """Start the client-gone watcher's thread."""
        self.watch.start()

    def stop(self) -> None:
        """Stop the client-gone watcher (after every connection is shut down)."""
        self.watch.stop()

    def handle(self, data: bytes, sock: socket.socket, who: str) -> bytes | None:
        """The reply frame to one request frame ``data`` from ``who``; None when there is
        nobody to answer (the client left mid-job)."""
        try:
            req = protocol.decode_request(data)
        except BadRequest as exc:
            self.stats.count("bad_frames")
            logger.warning("connection %s: bad request: %s", who, safe(exc))
            return protocol.encode_error(protocol.request_id_of(data), exc)
        try:
            if req.op == "fetch":
                reply = protocol.encode_result(req.id, self._fetch(req.args, sock, who))
                if len(reply) > protocol.MAX_REPLY_BYTES:  # answer here, not a frame the client refuses
                    raise FrameTooLarge(f"the reply of {len(reply)} bytes is past the reply limit "
                                        f"of {protocol.MAX_REPLY_BYTES} bytes")
                return reply
            if req.op == "ping":
                return protocol.encode_result(req.id, {
                    "pong": True, "version": __version__, "protocol": protocol.PROTOCOL_VERSION,
                    "pid": os.getpid(), "draining": self.draining})
            if req.op == "status":
                return protocol.encode_result(req.id, self.status_provider())
            if req.op == "metrics":  # what /metrics serves, for machines without the HTTP port
                return protocol.encode_result(req.id, {"text": self.metrics_provider()})
            if req.op == "sites":  # with {"problems": true}: the load's problems too
                registry = self.registry
                if req.args.get("problems"):
                    return protocol.encode_result(req.id, {"sites": registry.describe(),
                                                           "problems": list(registry.problems)})
                return protocol.encode_result(req.id, registry.describe())
            raise UnknownOp(f"unknown op {req.op!r} (known: {', '.join(protocol.OPS)})")
        except _ClientGone:
            return None
        except BrowserdError as exc:
            return protocol.encode_error(req.id, exc)
        except Exception as exc:
            logger.exception("connection %s: op %s failed", who, safe(req.op, 64))
            return protocol.encode_error(req.id, Internal(f"{type(exc).__name__}: {exc}"))

    def _fetch(self, args: dict, sock, who) -> dict:
        t0 = time.monotonic()
        job = None
        outcome, queue_wait, browser = "internal", None, "-"
        try:
            if self.draining:
                raise ShuttingDown("browserd is shutting down")
            registry = self.registry  # one registry for the whole job, even across a reload
            job = parse_fetch(args, self.config, registry.sites, self.proxy_pools)
            site = registry.get(job.site)
            site.check_params(job.params)
            self.watch.watch(sock, job)
            try:
                page, info = self.pool.run(job, site)
            finally:
                self.watch.unwatch(sock)
            outcome, queue_wait, browser = "ok", info["queue_wait"], info["browser"]
            total = time.monotonic() - t0
            result = {"source": page.source, "url": page.url, "title": page.title, "site": job.site,
                      "status": page.status, "headers": page.headers, "mime_type": page.mime_type,
                      "redirects": page.redirects, "charset": page.charset,
                      "browser": info["browser"], "attempts": info["attempts"], "notes": job.notes,
                    "timing": {"queue_wait": round(queue_wait, 4), "fetch": round(total - queue_wait, 4),
                               "total": round(total, 4)}}
            result.update(page.outputs)  # what the job's options asked for (browserd.joboptions)
            if page.body is not None:  # not an HTML document: its bytes, base64 on the wire
                result["body"] = base64.b64encode(page.body).decode("ascii")
            return result
        except BrowserdError as exc:
            if job is not None and job.aborted == "client_gone":
                outcome = "client_gone"
                raise _ClientGone() from None
            outcome = exc.code
            raise
        finally:
            total = time.monotonic() - t0
            self.stats.job_done(outcome, total if outcome == "ok" else None, queue_wait,
                                site=job.site if job else "-")
            logger.info("job=%s client=%s site=%s url=%s outcome=%s browser=%s queue_wait=%s total=%.3fs",
                        job.id if job else "-", who, safe(job.site if job else args.get("site", "-"), 100),
                        safe(job.url if job else args.get("url"), 200), outcome, safe(browser, 100),
                        f"{queue_wait:.3f}s" if queue_wait is not None else "-", total)
