"""Metrics and health over HTTP (opt-in: ``metrics_listen``), and the Prometheus text of
the ``metrics`` op.

Nothing is counted here: a custom collector reads the daemon's existing figures (the
``status`` reply: :class:`~browserd.stats.Stats` and the pool's snapshot, plus the
histograms and per-site counters :class:`~browserd.stats.Stats` keeps) at every scrape,
and ``prometheus_client`` writes them out. Routes: ``/metrics``, ``/healthz`` (the daemon
answers), ``/readyz`` (serving, not draining, at least one browser up; else 503). Served by
one thread, one request at a time, 2 s per connection, nothing logged: the port is
loopback-only unless ``insecure_listen_any``, and the browsers' egress policy refuses it.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

#: Events with a metric of their own (the rest go to browserd_events_total{event}).
_OWN_EVENTS = {"replaced": "browserd_browser_replacements_total",
               "recycled": "browserd_browser_recycles_total",
               "canary_failed": "browserd_canary_failures_total"}


class BrowserdCollector:
    """Reads ``status()`` (the daemon's status reply) and ``counters()``
    (:meth:`browserd.stats.Stats.counters`) at each collection."""

    def __init__(self, status, counters):
        self.status, self.counters = status, counters

    def describe(self):
        """Nothing described up front: the families are known only when collected."""
        return []  # collected on demand only

    def collect(self):
        """The metric families, built from the status reply and ``Stats.counters()`` at scrape time."""
        status, counters = self.status(), self.counters()
        jobs = CounterMetricFamily("browserd_jobs", "Fetch jobs answered, by site and outcome.",
                                   labels=["site", "outcome"])
        for (site, outcome), n in sorted(counters["by_site"].items()):
            jobs.add_metric([site, outcome], n)
        yield jobs
        for name, key, doc in (
                ("browserd_job_duration_seconds", "latency", "Seconds a successful job took, queue wait included."),
                ("browserd_queue_wait_seconds", "queue_wait", "Seconds a job waited for a browser.")):
            h = counters[key]
            buckets = [(_le(bound), n) for bound, n in h["buckets"]] + [("+Inf", h["count"])]
            yield HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h["sum"])
        pool = status["browsers"]
        states = GaugeMetricFamily("browserd_browsers", "Browsers by state.", labels=["state"])
        resetting = pool.get("resetting", 0)
        probing = sum(1 for b in pool["browsers"] if b["state"] == "probing")
        for state, n in (("idle", pool["idle"]), ("busy", max(0, pool["busy"] - resetting - probing)),
                         ("resetting", resetting), ("probing", probing), ("starting", pool["starting"])):
            states.add_metric([state], n)
        yield states
        yield GaugeMetricFamily("browserd_browsers_configured", "Browsers the pool is sized for.",
                                value=pool["size"])
        yield CounterMetricFamily("browserd_browser_resets", "Browser resets done after jobs.",
                                  value=counters["resets"])
        events = dict(status["events"])
        for event, name in _OWN_EVENTS.items():
            yield CounterMetricFamily(name[:-len("_total")], f"Browsers {event} (event {event!r}).",
                                      value=events.pop(event, 0))
        other = CounterMetricFamily("browserd_events", "Other daemon events (see README: status).",
                                    labels=["event"])
        for event, n in sorted(events.items()):
            other.add_metric([event], n)
        yield other
        yield GaugeMetricFamily("browserd_queue_depth", "Jobs waiting for a browser.", value=pool["waiters"])
        yield GaugeMetricFamily("browserd_active_jobs", "Jobs accepted and not answered yet.",
                                value=pool["active_jobs"])
        yield GaugeMetricFamily("browserd_connections", "Client connections open.", value=status["connections"])
        yield GaugeMetricFamily("browserd_draining", "1 while the daemon drains to stop.",
                                value=int(bool(status["draining"])))
        yield GaugeMetricFamily("browserd_uptime_seconds", "Seconds since the daemon started.",
                                value=status["uptime"])


def _le(bound: float) -> str:
    return repr(float(bound))


def render(status, counters) -> str:
    """The Prometheus text of one collection."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrowserdCollector(status, counters))
    return generate_latest(registry).decode("utf-8")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9464)")
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    timeout = 2.0
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        app = self.server.app
        if path == "/metrics":
            return self._send(200, app.metrics_text().encode(), CONTENT_TYPE_LATEST)
        if path == "/healthz":
            return self._send(200, b"ok\n")
        if path == "/readyz":
            reason = app.not_ready()
            return self._send(503 if reason else 200, f"{reason or 'ready'}\n".encode())
        return self._send(404, b"not found: /metrics, /healthz, /readyz\n")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class MetricsServer:
    """Bound in the foreground (``prepare``: a port in use fails the start), served by one
    thread started after daemonizing. ``app`` has ``metrics_text() -> str`` and
    ``not_ready() -> str | None``."""

    def __init__(self, listen: str, app):
        host, port = parse_listen(listen)

        class _Server(HTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.httpd = _Server((host, port), _Handler)
        self.httpd.app = app
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, the base of /metrics, /healthz and /readyz."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def fileno(self) -> int:
        """The listening socket's fd (preserved across daemonizing)."""
        return self.httpd.fileno()

    def start(self) -> "MetricsServer":
        """Serve on a daemon thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
