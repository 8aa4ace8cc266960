"""Benchmark browserd against an in-process warm driver, an in-process pool and a browser
per request, on the same Chromium, in one run.

    python -m benchmarks.run [--quick] [--out DIR] [--only SECTION[,SECTION...]]

Sections: driver, pool, naive, browserd, pages, ping, startup, memory (default: all).
Prints a markdown table and the targets; writes <stamp>.json, <stamp>.png and <stamp>.md
to --out (default benchmarks/results/). Every page is served from 127.0.0.1; every load
loop is bounded in count and in time; every browser and daemon is stopped on the way out.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass

from . import report
from .report import BROWSERD, DRIVER, NAIVE, PING, POOL
from .systems import Daemon, InProcess, PageProcess, chromium_version, launch_spec, run_naive

SECTIONS = ("driver", "pool", "naive", "browserd", "pages", "ping", "startup", "memory")
#: The pages of section 8: name -> (path and query with a {m} marker, CSS selector to wait for).
PAGES = {
    "static": ("/static?m={m}", None),
    "js": ("/js?delay=200&m={m}", "#built"),
    "large": ("/large?kb=1024&m={m}", None),
}


@dataclass(frozen=True)
class Sizes:
    ns: tuple = (1, 2, 4)          # browsers (daemon) / drivers (in-process pool)
    ms: tuple = (1, 4, 16)         # concurrent callers
    window: float = 5.0            # seconds per throughput cell ...
    warm: float = 1.0              # ... of which the first are not counted
    driver_window: float = 6.0     # the warm driver's own cell
    breakdown: int = 20            # fetches timed step by step
    page_counts: tuple = (("js", 15), ("large", 4))
    page_limit: float = 60.0       # seconds at most per page and system
    naive: int = 3
    naive_limit: float = 60.0
    ping: int = 1000               # pings by one client
    ping_m: int = 16
    ping_each: int = 100           # pings by each of ping_m clients
    start_ns: tuple = (1, 2, 4)
    rss_n: int = 2
    rss_m: int = 4
    rss_fetches: int = 2000
    rss_limit: float = 240.0       # seconds: fewer fetches are reported if the machine is slower


QUICK = Sizes(ns=(1, 2), ms=(1, 4), window=2.0, warm=0.5, driver_window=3.0, breakdown=5,
              page_counts=(("js", 3), ("large", 2)), page_limit=30.0, naive=2, naive_limit=30.0,
              ping=300, ping_each=30, rss_fetches=200, rss_limit=60.0)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # so every finally runs and nothing is left behind


class Bench:
    """Runs the sections. The in-process browsers stay up for the whole run, and each
    in-process cell is measured right before the browserd cell it is compared with, so a
    change of load on the machine skews both sides of a ratio alike."""

    def __init__(self, sizes: Sizes, only: set, pages: PageProcess):
        self.s, self.only, self.pages = sizes, only, pages
        self.rows: list[dict] = []
        self.extra: dict = {}

    def url(self, page: str) -> str:
        return f"http://{self.pages.host}:{self.pages.port}{PAGES[page][0]}"

    def add(self, row: dict) -> None:
        self.rows.append(row)
        log(f"  {row['system']} {row['page']} N={row['n']} M={row['m']}: {row['rps']:.1f} req/s, "
            f"p50 {row['p50']} ms, p99 {row['p99']} ms, {row['failures']} failures")

    def run(self, spec) -> None:
        s, only = self.s, self.only
        daemon_ns = set()
        if "browserd" in only:
            daemon_ns |= set(s.ns)
        if "startup" in only:
            daemon_ns |= set(s.start_ns)
        if only & {"ping", "pages"}:
            daemon_ns.add(1)
        if "memory" in only:
            daemon_ns.add(s.rss_n)
        inproc_n = max(s.ns) if "pool" in only else 1 if only & {"driver", "pages"} else 0
        log(f"in-process: starting {inproc_n} warm browsers")
        with InProcess(spec, inproc_n) as inproc:
            if "driver" in only:
                self.extra["breakdown_ms"] = {k: round(v, 2) for k, v in
                                              inproc.breakdown(self.url("static"), s.breakdown).items()}
            if "naive" in only:
                self.naive(spec)
            for n in sorted(daemon_ns | set(s.ns) | {1}):
                daemon = Daemon(n) if n in daemon_ns else None
                try:
                    if daemon:
                        log(f"browserd: starting a daemon with {n} browsers")
                        self.extra.setdefault("startup_s", {})[str(n)] = round(daemon.start(), 3)
                        log(f"  started in {self.extra['startup_s'][str(n)]:.2f} s")
                    self.cells(n, inproc, daemon)
                finally:
                    if daemon:
                        log(f"browserd: stopping the daemon with {n} browsers")
                        daemon.stop()

    def cells(self, n: int, inproc: InProcess, daemon: Daemon | None) -> None:
        """Everything measured while the daemon with ``n`` browsers (if any) is up."""
        s, only = self.s, self.only
        if n == 1 and daemon and "ping" in only:
            for m, count in ((1, s.ping), (s.ping_m, s.ping_each)):
                run = daemon.run(m, "", 60.0, count, op="ping")
                self.add(report.summarize(run, PING, "-", n, m, by_count=True))
        if n == 1 and only & {"driver", "pages"}:
            run = inproc.run(1, 1, self.url("static"), s.driver_window)
            self.add(report.summarize(run, DRIVER, "static", 1, 1, s.warm, inproc.rss_mb(1)))
        if n == 1 and "pages" in only:
            for page, count in s.page_counts:
                wait_for = PAGES[page][1]
                run = inproc.run(1, 1, self.url(page), s.page_limit, count, wait_for=wait_for)
                self.add(report.summarize(run, DRIVER, page, 1, 1, rss_mb=inproc.rss_mb(1), by_count=True))
                if daemon:
                    run = daemon.run(1, self.url(page), s.page_limit, count,
                                     params={"wait_for": wait_for} if wait_for else None)
                    self.add(report.summarize(run, BROWSERD, page, n, 1, rss_mb=daemon.rss_mb(), by_count=True))
        if n in s.ns:
            for m in s.ms:
                if "pool" in only:
                    run = inproc.run(n, m, self.url("static"), s.window)
                    self.add(report.summarize(run, POOL, "static", n, m, s.warm, inproc.rss_mb(n)))
                if daemon and "browserd" in only:
                    run = daemon.run(m, self.url("static"), s.window)
                    self.add(report.summarize(run, BROWSERD, "static", n, m, s.warm, daemon.rss_mb()))
        if n == s.rss_n and daemon and "memory" in only:
            self.memory(daemon)

    def naive(self, spec) -> None:
        log(f"naive: {self.s.naive} requests, a new browser each")
        run, peak = run_naive(spec, self.url("static"), self.s.naive, self.s.naive_limit)
        self.add(report.summarize(run, NAIVE, "static", 1, 1, rss_mb=peak, by_count=True))

    def memory(self, daemon: Daemon) -> None:
        s = self.s
        log(f"memory: {s.rss_fetches} fetches by {s.rss_m} clients on N={daemon.n}, sampling RSS")
        result = daemon.memory(self.url("static"), s.rss_fetches, s.rss_m, s.rss_limit)
        samples = result["samples"]
        served0 = samples[0][1]
        done = samples[-1][1] - served0
        # Warm-up: the first tenth of the fetches.
        warm = next((x for x in samples if x[1] - served0 >= max(1, done // 10)), samples[-1])
        last = samples[-1]
        rows = [x[2] for x in samples]
        events = daemon.status().get("events", {})
        self.extra["memory"] = {
            "n": daemon.n, "m": s.rss_m, "fetches": done, "samples": samples,
            "warm_mb": warm[2], "last_mb": last[2], "min_mb": min(rows), "max_mb": max(rows),
            "drift_pct": round((last[2] - warm[2]) / warm[2] * 100, 2) if warm[2] else None,
            "events": {k: v for k, v in events.items() if k in ("recycled", "replaced", "retried")},
        }
        row = report.summarize(result["run"], BROWSERD, "static", daemon.n, s.rss_m, rss_mb=last[2], by_count=True)
        row["system"] = BROWSERD + " (memory run)"
        self.add(row)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (under 2 minutes)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                        help="directory for <stamp>.json, .png and .md (default: benchmarks/results)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated subset of: {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not only or only - set(SECTIONS):
        parser.error(f"--only takes sections among: {', '.join(SECTIONS)}")
    sizes = QUICK if args.quick else Sizes()
    signal.signal(signal.SIGTERM, _terminate)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    t0, load_before = time.monotonic(), os.getloadavg()[0]
    spec = launch_spec()
    with PageProcess() as pages:
        bench = Bench(sizes, only, pages)
        bench.run(spec)
    elapsed, load_after = time.monotonic() - t0, os.getloadavg()[0]

    order = {DRIVER: 0, POOL: 1, NAIVE: 2, BROWSERD: 3, BROWSERD + " (memory run)": 4, PING: 5}
    pages_order = {p: i for i, p in enumerate(PAGES)}
    rows = sorted(bench.rows, key=lambda r: (pages_order.get(r["page"], 9), order[r["system"]], r["n"], r["m"]))
    results = report.targets(rows, bench.extra)
    png = report.chart(os.path.join(args.out, f"{stamp}.png"), rows)
    mode = "quick" if args.quick else "default"
    text = report.render(
        f"browserd benchmark ({mode} run, {stamp})",
        f"{os.cpu_count()} CPUs, {platform.platform()}, {chromium_version(spec)}; {elapsed:.0f} s; "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after (other work on the "
        f"machine skews every figure).", rows, bench.extra, results, png)
    print(text)
    report.write_markdown(os.path.join(args.out, f"{stamp}.md"), text)
    report.write_json(os.path.join(args.out, f"{stamp}.json"), {
        "stamp": stamp, "mode": mode, "seconds": round(elapsed, 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "sizes": asdict(sizes), "sections": sorted(only), "rows": rows, "extra": bench.extra,
        "targets": results, "chart": png,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
