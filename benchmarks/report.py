"""Figures from raw runs: the markdown table, the targets, the JSON and the chart."""

from __future__ import annotations

import json
import os
from collections import Counter

DRIVER, POOL, NAIVE, BROWSERD, PING = ("in-process driver", "in-process pool", "naive (browser per request)",
                                       "browserd", "browserd ping")
#: The in-process pool resetting every browser after every page as browserd does: the same
#: browser work per page, so browserd against it is the cost of the daemon itself.
POOL_RESET = "in-process pool + reset"
#: The grid section: the same daemon with local browsers and with its browsers on a Grid.
GRID_LOCAL, GRID = "browserd, local browsers", "browserd, Grid browsers"
#: The blocking section: one daemon, a page of many images, with and without blocking them.
IMAGES, IMAGES_BLOCKED = "browserd, images loaded", "browserd, images blocked"


#: The egress section: the destination policy on (only the pages' address opened) vs off
#: (every address opened), and jobs straight out vs through a local upstream proxy.
EGRESS_ON = "browserd, egress policy on"
EGRESS_OFF = "browserd, egress policy off"
EGRESS_DIRECT = "browserd, direct"
EGRESS_PROXY = "browserd, via a local SOCKS5 proxy"
#: The isolation section: a warm in-process pool that never resets (the reference), browserd,
#: and (--baseline) browserd of another checkout, in the same rounds.
ISO_POOL = "in-process pool, no reset"
ISO_BROWSERD = "browserd (isolation)"
ISO_BASELINE = "browserd, baseline checkout"
ISO_POOL_RESET = "in-process pool + browserd's reset"


def percentile(values, q: float) -> float | None:
    """Linear interpolation between closest ranks."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(run: dict, system: str, page: str, n: int, m: int, warm: float = 0.0,
              rss_mb: float | None = None, by_count: bool = False) -> dict:
    """One table row from a raw run. Throughput counts the requests finished in ``[start +
    warm, end]`` (for a run bounded by its request count, ``by_count``, ``end`` is the last
    completion). Latencies are those of every request finished after ``start + warm``, also
    the ones still in flight at ``end``: a caller starved for the whole window (an unfair
    pool) shows in p99 instead of vanishing from the sample."""
    t_from = run["start"] + warm
    t_to = run["end"]
    if by_count:
        t_to = min(t_to, max((r[0] for r in run["ok"] + run["fail"]), default=t_to))
    ok = [r for r in run["ok"] if t_from <= r[0] <= t_to]
    fails = run["fail"]  # every failure counts, warm-up or not
    lat = [r[1] for r in run["ok"] if r[0] >= t_from]
    timed = [r for r in run["ok"] if r[0] >= t_from and r[2]]  # browserd: the daemon's own timing
    return {
        "system": system, "page": page, "n": n, "m": m,
        "rps": round(len(ok) / (t_to - t_from), 2) if ok and t_to > t_from else 0.0,
        "p50": _r(percentile(lat, 50)), "p99": _r(percentile(lat, 99)),
        "failures": len(fails), "failure_codes": dict(Counter(r[1] for r in fails)),
        "requests": len(ok), "seconds": round(max(0.0, t_to - t_from), 2), "rss_mb": rss_mb,
        "queue_wait_p50": _r(percentile([r[3] for r in timed], 50)),
        "job_p50": _r(percentile([r[2] - r[3] for r in timed], 50)),
        "ipc_p50": _r(percentile([r[1] - r[2] for r in timed], 50)), "lat_ms": lat,
        "cpu_ms_per_request": _per_request(run.get("cpu_s"), len(run["ok"]) + len(run["fail"])),
        "cpu_ms_by_kind": _per_request(run.get("cpu_kinds_s"), len(run["ok"]) + len(run["fail"])),
    }


def _per_request(cpu_s: dict | None, requests: int) -> dict | None:
    """CPU milliseconds per request executed, by process group (python: this harness's
    process for in-process runs, the daemon's for browserd; browsers; client processes)."""
    if not cpu_s or not requests:
        return None
    return {k: round(v * 1000 / requests, 1) for k, v in cpu_s.items()}


def _r(x, nd=2):
    return None if x is None else round(x, nd)


def _find(rows, system, page="static", n=None, m=None):
    for row in rows:
        if row["system"] == system and row["page"] == page and (n is None or row["n"] == n) \
                and (m is None or row["m"] == m):
            return row
    return None


def ratio(row: dict, rows: list) -> str:
    """Latency against the warm driver (one caller) or throughput against the warm pool."""
    if row["system"] in (DRIVER, PING):
        return "ref" if row["system"] == DRIVER else "—"
    if row["system"] == GRID_LOCAL:
        return "ref (Grid)"
    if row["system"] == IMAGES:
        return "ref (blocking)"
    if row["system"] in (EGRESS_OFF, EGRESS_DIRECT):
        return "ref (egress)"
    if row["system"] in (EGRESS_ON, EGRESS_PROXY):
        ref = _find(rows, EGRESS_OFF if row["system"] == EGRESS_ON else EGRESS_DIRECT, row["page"], row["n"], row["m"])
        if ref and ref["p50"] and row["p50"] and ref["rps"]:
            return (f"vs {'off' if row['system'] == EGRESS_ON else 'direct'}: lat ×{row['p50'] / ref['p50']:.2f}, "
                    f"thr ×{row['rps'] / ref['rps']:.2f}")
        return "—"
    if row["system"] == ISO_POOL:
        return f"ref (isolation, round {row.get('round', 1)})"
    if row["system"] in (ISO_BROWSERD, ISO_BASELINE, ISO_POOL_RESET):
        ref = next((r for r in rows if r["system"] == ISO_POOL and r["page"] == row["page"]
                    and r.get("round") == row.get("round")), None)
        return f"thr ×{row['rps'] / ref['rps']:.2f} (round {row.get('round', 1)})" if ref and ref["rps"] else "—"
    if row["system"] == IMAGES_BLOCKED:
        ref = _find(rows, IMAGES, row["page"], row["n"], row["m"])
        if ref and ref["p50"] and row["p50"] and ref["rps"]:
            return f"vs loaded: lat ×{row['p50'] / ref['p50']:.2f}, thr ×{row['rps'] / ref['rps']:.2f}"
        return "—"
    if row["system"] == GRID:
        ref = _find(rows, GRID_LOCAL, row["page"], row["n"], row["m"])
        if ref and ref["p50"] and row["p50"] and ref["rps"]:
            return f"vs local: lat ×{row['p50'] / ref['p50']:.2f}, thr ×{row['rps'] / ref['rps']:.2f}"
        return "—"
    if row["m"] == 1:
        ref = _find(rows, DRIVER, row["page"])
        if ref and ref["p50"] and row["p50"]:
            return f"lat ×{row['p50'] / ref['p50']:.2f}"
    else:
        if row["system"] == POOL:
            return "ref"
        if row["system"] == POOL_RESET:
            ref = _find(rows, POOL, row["page"], row["n"], row["m"])
            return f"thr ×{row['rps'] / ref['rps']:.2f}" if ref and ref["rps"] else "—"
        ref = _find(rows, POOL, row["page"], row["n"], row["m"])
        if ref and ref["rps"]:
            return f"thr ×{row['rps'] / ref['rps']:.2f}"
    return "—"


def table(rows: list) -> str:
    head = ["system", "page", "N", "M", "requests/s", "p50 ms", "p99 ms", "failures", "RSS MB", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["system"], row["page"], row["n"], row["m"], f"{row['rps']:.1f}", _fmt(row["p50"]),
                 _fmt(row["p99"]), row["failures"], _fmt(row["rss_mb"], 0), ratio(row, rows)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def grid_table(rows: list) -> str:
    """Local vs Grid, one line per (N, M): the table of docs/scale-out.md."""
    lines = ["| N | M | req/s local | req/s Grid | Grid / local | p50 ms local | p50 ms Grid | "
             "p99 ms local | p99 ms Grid | failures local / Grid |", "|" + "---|" * 10]
    for g in [r for r in rows if r["system"] == GRID]:
        loc = _find(rows, GRID_LOCAL, g["page"], g["n"], g["m"])
        if not loc:
            continue
        thr = f"{g['rps'] / loc['rps']:.2f}" if loc["rps"] else "—"
        lines.append("| " + " | ".join(str(c) for c in (
            g["n"], g["m"], f"{loc['rps']:.1f}", f"{g['rps']:.1f}", thr, _fmt(loc["p50"]), _fmt(g["p50"]),
            _fmt(loc["p99"]), _fmt(g["p99"]), f"{loc['failures']} / {g['failures']}")) + " |")
    return "\n".join(lines)


def grid_text(rows: list, extra: dict) -> str:
    """The grid section of the report: its table and what explains it, or why it is missing."""
    info = extra.get("grid")
    if not info:
        return ""
    out = ["## Local vs Grid", ""]
    if info.get("skipped"):
        return "\n".join(out + [f"Not measured: {info['skipped']}", ""])
    out += [f"browserd with N={info['n']} local browsers and with N={info['n']} sessions on a Selenium "
            f"Grid {info['version']} standalone on 127.0.0.1 (Debian chromedriver and Chromium on its node), "
            "both daemons up at once and measured alternately in this run, the same static page from "
            "the harness's page server; M client processes.", "", grid_table(rows), ""]
    lines = []
    pairs = [(loc, _find(rows, GRID, loc["page"], loc["n"], loc["m"]))
             for loc in rows if loc["system"] == GRID_LOCAL]
    pairs = [(loc, g) for loc, g in pairs if g]
    if pairs:
        lines.append("Where a request's time goes (medians, ms: queue wait / job in the daemon / client "
                     "round trip minus the daemon's time, of p50), local vs Grid: " + "; ".join(
                         f"M={loc['m']}: {_split(loc)} vs {_split(g)}" for loc, g in pairs))
        lines.append("CPU ms per request (python = the daemon; browsers = chromedrivers + Chromiums; grid = "
                     "the Grid's Java): " + "; ".join(
                         f"M={loc['m']}: local {_cpu(loc)}, Grid {_cpu(g)}" for loc, g in pairs))
        lines.append("RSS MB (local: daemon + its browsers; Grid: daemon + the whole Grid, Java included): "
                     + "; ".join(f"M={loc['m']}: {_fmt(loc['rss_mb'], 0)} vs {_fmt(g['rss_mb'], 0)}"
                                 for loc, g in pairs))
    bd = info.get("breakdown_ms") or {}
    if bd.get("local") and bd.get("grid"):
        lines.append(f"Per-command medians on one warm browser, local chromedriver vs through the Grid "
                     f"({info.get('breakdown_fetches', '?')} fetches each, interleaved; ms): " + "; ".join(
                         f"{k} {v:.1f} vs {bd['grid'][k]:.1f}" for k, v in bd["local"].items() if k in bd["grid"]))
    if info.get("start_s"):
        lines.append("Start-up: Grid ready in {grid:.1f} s; `browserd start` {local:.2f} s local vs "
                     "{remote:.2f} s on the Grid".format(**info["start_s"]))
    if info.get("events"):
        lines.append(f"Daemon events: local {info['events'].get('local') or 'none'}, "
                     f"Grid {info['events'].get('grid') or 'none'}; Grid sessions left after stop: "
                     f"{info.get('sessions_left', '?')}")
    return "\n".join(out + [f"- {line}" for line in lines] + [""])


#: The pages of the options section, in the order of its table's columns.
OPTION_PAGES = ("static", "heavy", "xhr")


def options_table(info: dict) -> str:
    """The options section: one line per variant, per page its p50 and what it adds to
    plain ``load`` of the same page (ms, and the ratio)."""
    cells = {(c["page"], c["system"]): c for c in info["cells"]}
    variants = list(dict.fromkeys(c["system"] for c in info["cells"]))
    pages = [p for p in OPTION_PAGES if any(c["page"] == p for c in info["cells"])]
    head = ["job asks for"]
    for p in pages:
        head += [f"{_page_label(p, info)}: p50 ms", "over load"]
    head.append("jobs / failures")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in variants:
        row, jobs, fails = [v], 0, 0
        for p in pages:
            c, ref = cells.get((p, v)), cells.get((p, "load"))
            if not c:
                row += ["—", "—"]
                continue
            jobs, fails = jobs + c["requests"], fails + c["failures"]
            row.append(_fmt(c["p50"]))
            if v == "load":
                row.append("ref")
            elif c["p50"] is not None and ref and ref["p50"]:
                row.append(f"{c['p50'] - ref['p50']:+.0f} ms (×{c['p50'] / ref['p50']:.2f})")
            else:
                row.append("—")
        row.append(f"{jobs} / {fails}")
        lines.append("| " + " | ".join(str(x) for x in row) + " |")
    return "\n".join(lines)


def _page_label(page: str, info: dict) -> str:
    return {"static": "static", "heavy": f"heavy ({info.get('heavy_kb')} KB DOM)",
            "xhr": f"xhr page ({info.get('xhrs')} XHRs)"}.get(page, page)


def options_text(extra: dict) -> str:
    """The options section of the report: its table and how it was measured."""
    info = extra.get("options")
    if not info:
        return ""
    codes = {}
    for c in info["cells"]:
        for code, k in (c.get("failure_codes") or {}).items():
            codes[f"{c['page']} {c['system']}: {code}"] = k
    return "\n".join([
        "## Job options: the cost of each", "",
        f"One daemon with N={info['n']} browsers, one client (M=1) going round-robin over every (page, option) "
        f"cell, each round in a shuffled order, {info['rounds']} rounds of which the first {info['warm_rounds']} not counted, in "
        f"{info['seconds']:.0f} s: a drift of the machine's load hits every cell alike. \"over load\": p50 "
        "minus the p50 of plain `load` of the same page (and their ratio). The xhr page's two cells wait "
        f"for `#xhr-done` (all {info['xhrs']} XHR JSON responses answered); the capture cell asks for "
        "`capture: [\"*/api/*\"]` and must bring all of them back. Every output is checked in the reply.", "",
        options_table(info), "",
        *([f"Failures: {codes}", ""] if codes else []),
    ])


def _split(row: dict) -> str:
    if row.get("job_p50") is None:
        return "—"
    return f"{row['queue_wait_p50']:.1f} / {row['job_p50']:.1f} / {row['ipc_p50']:.1f} of {row['p50']:.1f}"


def _cpu(row: dict) -> str:
    cpu = row.get("cpu_ms_per_request")
    if not cpu:
        return "—"
    return " + ".join(f"{k} {v:.1f}" for k, v in cpu.items()) + f" = {sum(cpu.values()):.0f}"


def _fmt(x, nd=1):
    if x is None:
        return "—"
    return f"{x:.{nd}f}" if x >= 10 or nd == 0 else f"{x:.{max(nd, 2)}f}"


def targets(rows: list, extra: dict) -> list[dict]:
    """The targets, computed from this run only; a missing figure gives ``None``."""
    out = []

    def add(name, value, op, limit):
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        out.append({"target": name, "value": None if value is None else round(value, 3), "op": op,
                    "limit": limit, "met": met})

    def div(a, b):
        return a / b if a is not None and b else None

    drv = _find(rows, DRIVER)
    static = [r for r in rows if r["system"] == BROWSERD and r["page"] == "static"]
    ns, ms = sorted({r["n"] for r in static}) or [1], sorted({r["m"] for r in static}) or [1]
    for n in ns:
        b = _find(rows, BROWSERD, n=n, m=1)
        add(f"browserd p50 (N={n}, M=1) / in-process driver p50", div(b and b["p50"], drv and drv["p50"]),
            "<=", 1.05)
    for n in ns:
        b, p = _find(rows, BROWSERD, n=n, m=ms[-1]), _find(rows, POOL, n=n, m=ms[-1])
        add(f"browserd rps / in-process pool rps (N={n}, M={ms[-1]}, saturated)",
            div(b and b["rps"], p and p["rps"]), ">=", 0.95)
    bd = _find(rows, BROWSERD, n=1, m=1)
    naive = _find(rows, NAIVE)
    add("browserd rps (N=1, M=1) / naive rps (one request at a time each)",
        div(bd and bd["rps"], naive and naive["rps"]), ">=", 10)
    ping = _find(rows, PING, page="-", m=1)
    add("ping p50 ms, one client", ping and ping["p50"], "<=", 1.0)
    start = extra.get("startup_s", {})
    add("start N=4 / start N=1 (s/s)", div(start.get("4"), start.get("1")), "<=", 1.5)
    add("RSS drift % (last vs after warm-up)", (extra.get("memory") or {}).get("drift_pct"), "<=", 15)
    for on in (r for r in rows if r["system"] == EGRESS_ON):
        off = _find(rows, EGRESS_OFF, on["page"], on["n"], on["m"])
        what = f"{on['page']}, N={on['n']}, M={on['m']}"
        add(f"egress policy on / off, throughput ({what})", div(on["rps"], off and off["rps"]), ">=", 0.95)
        add(f"egress policy on / off, p50 ({what})", div(on["p50"], off and off["p50"]), "<=", 1.05)
    for page, ratios in ((extra.get("isolation") or {}).get("ratios") or {}).get(ISO_BROWSERD, {}).items():
        xs = sorted(x for x in ratios if x is not None)
        add(f"isolation: browserd / in-process pool without reset, throughput ({page}, N=2, M=16, median of "
            f"{len(xs)} rounds)", xs[len(xs) // 2] if xs else None, ">=", 0.95)
    direct, via = _find(rows, EGRESS_DIRECT), _find(rows, EGRESS_PROXY)
    if direct and via and direct["p50"] is not None and via["p50"] is not None:
        add("job through a local upstream proxy minus direct, p50 ms", via["p50"] - direct["p50"], "<=", 10)
    return out


def targets_text(results: list[dict]) -> str:
    lines = []
    for t in results:
        verdict = {True: "PASS", False: "MISS", None: "n/a "}[t["met"]]
        value = "—" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"- {verdict}  {t['target']}: {value} (target {t['op']} {t['limit']})")
    return "\n".join(lines)


def extras_text(rows: list, extra: dict) -> str:
    lines = []
    split = [r for r in rows if r["system"] == BROWSERD and r["job_p50"] is not None]
    if split:
        lines.append("browserd, where a request's time goes (medians, ms: queue wait for a browser / job "
                     "in the daemon / client round trip minus the daemon's time, of p50): " + "; ".join(
                         f"{r['page']} N={r['n']} M={r['m']}: {r['queue_wait_p50']:.1f} / {r['job_p50']:.1f}"
                         f" / {r['ipc_p50']:.1f} of {r['p50']:.1f}" for r in split))
    sat = [r for r in rows if r["system"] in (POOL, POOL_RESET, BROWSERD) and r["page"] == "static"
           and r["m"] == max(x["m"] for x in rows) and r.get("cpu_ms_per_request")]
    if sat:
        lines.append("CPU ms per request at saturation (static; python = the harness's process in-process, "
                     "the daemon for browserd; 2 cores = 2000 CPU ms per second): " + "; ".join(
                         f"{r['system']} N={r['n']}: " + " + ".join(
                             f"{k} {v:.1f}" for k, v in r["cpu_ms_per_request"].items())
                         + f" = {sum(r['cpu_ms_per_request'].values()):.0f}" for r in sat))
    pairs = [(r, _find(rows, BROWSERD, r["page"], r["n"], r["m"])) for r in rows if r["system"] == POOL_RESET]
    pairs = [(p, b) for p, b in pairs if b and p["rps"]]
    if pairs:
        lines.append("The daemon's own cost at saturation (browserd against an in-process pool that resets "
                     "each browser after each page as browserd does, same N and M): " + "; ".join(
                         f"N={p['n']} M={p['m']}: {b['rps']:.1f} / {p['rps']:.1f} req/s = ×{b['rps'] / p['rps']:.2f}"
                         for p, b in pairs))
    iso = extra.get("isolation")
    if iso and iso.get("ratios"):
        lines.append(f"Isolation cost (requests/s against a warm in-process pool that never resets, N={iso['n']}, "
                     f"M={iso['m']}, one ratio per round, rounds interleaved): " + "; ".join(
                         f"{system}: " + ", ".join(f"{page} {' '.join(f'×{x:.2f}' if x else '—' for x in xs)}"
                                                   for page, xs in pages.items())
                         for system, pages in iso["ratios"].items()))
        for system, reset in (iso.get("status_reset") or {}).items():
            if reset and reset.get("p50") is not None:
                lines.append(f"Reset as `status` reports it ({system}): p50 {reset['p50'] * 1000:.1f} ms, p99 "
                             f"{reset['p99'] * 1000:.1f} ms of {reset['samples']}; browsers replaced because a "
                             f"reset was unproven: {reset.get('unproven', '—')}; events "
                             f"{(iso.get('events') or {}).get(system) or 'none'}")
        for page, systems in (iso.get("cpu_by_kind") or {}).items():
            lines.append(f"CPU ms per job by process, {page} page (median of the rounds; what isolation "
                         f"costs and where): " + "; ".join(
                             f"{system}: " + ", ".join(f"{k} {v:.1f}" for k, v in kinds.items() if v >= 0.5)
                             + f" = {sum(kinds.values()):.0f}" for system, kinds in systems.items()))
        for page, steps in (iso.get("reset_steps_ms") or {}).items():
            lines.append(f"Reset steps in-process after a {page} page (median ms): "
                         + "; ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    block = extra.get("blocking")
    pairs = [(r, _find(rows, IMAGES_BLOCKED, r["page"], r["n"], r["m"])) for r in rows if r["system"] == IMAGES]
    if block and any(b for _, b in pairs):
        lines.append(f"Resource blocking (a page of {block['images']} images, each served after "
                     f"{block['image_delay_s'] * 1000:.0f} ms; `generic` vs a site with `block = (\"images\",)`): "
                     + "; ".join(f"N={r['n']} M={r['m']}: {r['rps']:.1f} -> {b['rps']:.1f} req/s "
                                 f"(×{b['rps'] / r['rps']:.1f}), p50 {_fmt(r['p50'])} -> {_fmt(b['p50'])} ms"
                                 for r, b in pairs if b and r["rps"]))
    batch = extra.get("batch")
    if batch:
        failed = ", ".join(f"{k} {v}" for k, v in batch["failed"].items()) or "none"
        lines.append(f"Batch: `browserd fetch -i` of {batch['urls']} local static pages with "
                     f"-j {batch['jobs']} on N={batch['n']}: {batch['saved']} saved ({batch['files']} files) in "
                     f"{batch['seconds']:.1f} s = {batch['pages_per_s']:.1f} pages/s (CLI start-up included); "
                     f"failed: {failed}")
    if extra.get("startup_s"):
        samples = extra.get("startup_samples_s", {})
        lines.append("Start-up (wall time of `browserd start` until it returns; median of the starts listed): "
                     + ", ".join(f"N={n}: {s:.2f} s" + (f" {samples[n]}" if len(samples.get(n, [])) > 1 else "")
                                 for n, s in extra["startup_s"].items()))
    mem = extra.get("memory")
    if mem:
        drift = "—" if mem["drift_pct"] is None else f"{mem['drift_pct']:+.1f}%"
        lines.append(f"Memory (N={mem['n']}, M={mem['m']}, {mem['fetches']} fetches, {len(mem['samples'])} "
                     f"samples): daemon-tree RSS after warm-up {mem['warm_mb']} MB, last {mem['last_mb']} MB, "
                     f"min {mem['min_mb']} / max {mem['max_mb']} MB, drift {drift}; "
                     f"daemon events: {mem.get('events') or 'none'}")
    if extra.get("breakdown_ms"):
        lines.append("Per-fetch WebDriver steps on a warm driver (median ms, static page): "
                     + "; ".join(f"{k} {v:.1f}" for k, v in extra["breakdown_ms"].items()))
    return "\n".join(f"- {line}" for line in lines)


def render(title: str, facts: str, rows: list, extra: dict, results: list, png: str | None) -> str:
    grid = grid_text(rows, extra)
    return "\n".join([
        f"# {title}", "", facts, "Ratio: `lat` = p50 / in-process driver p50 (same page); `thr` = requests/s "
        "/ in-process pool requests/s (same N and M); the Grid rows: against the local-browser daemon of the "
        "same section (same N and M).", "", table(rows), "",
        *([extras_text(rows, extra), ""] if extras_text(rows, extra) else []),
        *([grid] if grid else []),
        *([options_text(extra)] if options_text(extra) else []),
        "## Targets", "", targets_text(results), "",
        f"Chart: {png}" if png else "Chart: not drawn (matplotlib is not installed: pip install matplotlib)", "",
    ])


def write_json(path: str, payload: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)


def chart(path: str, rows: list) -> str | None:
    """Throughput vs concurrency per system, and latency distributions; None (with the
    reason printed by the caller) if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 5.5), gridspec_kw={"width_ratios": [1, 1.1]})
    static = [r for r in rows if r["page"] == "static"]
    grid_ms = sorted({r["m"] for r in static if r["system"] == GRID})
    ns = sorted({r["n"] for r in static if r["system"] in (POOL, BROWSERD)})
    colors = {n: f"C{i}" for i, n in enumerate(ns)}
    for system, style in ((POOL, "--"), (BROWSERD, "-")):
        for n in ns:
            pts = sorted((r["m"], r["rps"]) for r in static if r["system"] == system and r["n"] == n)
            if pts:
                left.plot([p[0] for p in pts], [p[1] for p in pts], style, color=colors[n], marker="o",
                          label=f"{system} N={n}")
    for system, style in ((GRID_LOCAL, ":"), (GRID, "-.")):
        pts = sorted((r["m"], r["rps"], r["n"]) for r in static if r["system"] == system)
        if pts:
            left.plot([p[0] for p in pts], [p[1] for p in pts], style, color="C7" if system == GRID else "C8",
                      marker="s", label=f"{system} N={pts[0][2]}")
    for system, marker, color in ((DRIVER, "*", "k"), (NAIVE, "x", "r")):
        row = _find(rows, system)
        if row:
            left.plot([row["m"]], [row["rps"]], marker, color=color, markersize=12, label=system)
    ms = sorted({r["m"] for r in static}) or [1]
    left.set_xscale("log", base=2)
    left.set_xticks(ms, [str(m) for m in ms])
    left.set_xlabel("concurrent callers M (threads in-process, client processes for browserd)")
    left.set_ylabel("requests/s (static ~20 KB page)")
    if grid_ms:
        left.set_title("Throughput vs concurrency (dashed: in-process pool, solid: browserd;\n"
                       "dotted / dash-dot: the grid section, local vs Grid browsers)", fontsize=10)
    else:
        left.set_title("Throughput vs concurrency (dashed: in-process pool, solid: browserd)")
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=8)
    top_n, top_m = (ns or [1])[-1], ms[-1]
    picks = [_find(rows, DRIVER), _find(rows, BROWSERD, n=1, m=1), _find(rows, BROWSERD, n=top_n, m=1),
             _find(rows, POOL, n=top_n, m=top_m), _find(rows, BROWSERD, n=top_n, m=top_m),
             _find(rows, NAIVE), _find(rows, PING, page="-", m=1)]
    if grid_ms:
        picks += [_find(rows, GRID_LOCAL, m=grid_ms[-1]), _find(rows, GRID, m=grid_ms[-1])]
    for row in {id(r): r for r in picks if r and r["lat_ms"]}.values():
        xs = sorted(row["lat_ms"])
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        right.step(xs, ys, where="post", label=f"{row['system']} ({row['page']}, N={row['n']}, M={row['m']})")
    right.set_xscale("log")
    right.set_xlabel("latency ms (log)")
    right.set_ylabel("fraction of requests")
    right.set_title("Latency distribution (CDF)")
    right.grid(alpha=0.3)
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_markdown(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
