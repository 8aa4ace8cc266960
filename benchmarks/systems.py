"""The systems under test, each measured the same way.

A *run* is a closed loop of ``m`` concurrent callers, bounded both by a request count per
caller and by a wall-clock end; it returns the raw samples ``{"ok": [[end_wall,
latency_ms, total_ms, queue_wait_ms], ...], "fail": [[end_wall, code], ...], "start", "end"}``
(the last two: the daemon's own timing of the job; 0 for in-process runs) that
:func:`benchmarks.report.summarize` turns into requests/s and percentiles.

- in-process: warm ``browserd.browser.Browser`` objects started from the daemon's own
  ``LaunchSpec`` (identical flags), driven directly (one driver, or a ``queue.Queue`` pool
  shared by threads);
- naive: a new browser per request;
- browserd: a daemon started and stopped through the real CLI in a private state dir,
  driven by client *processes* (``benchmarks/worker.py``);
- browserd on a Grid: the same daemon with ``--driver-source grid`` against a Selenium Grid 4
  standalone on 127.0.0.1 (:class:`GridProcess`, the launcher of the Grid tests).
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from browserd.browser import Browser, processes_of, reset_browser, total_rss
from browserd.browser.hygiene import STORAGE_TYPES, ResetUnproven

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1 << 20
#: Seconds a run may overrun its end before its callers are given up on.
GRACE = 90.0


def launch_spec():
    """The LaunchSpec the daemon derives from its default configuration, for the in-process
    systems: plain Selenium browsers, without the daemon's private network namespace and
    egress proxy (those are part of what browserd's figures measure)."""
    import dataclasses

    from browserd.config import load
    from browserd.daemon.launch import launch_spec as derive

    return dataclasses.replace(derive(load(env={})), isolate_network=False)


def chromium_version(spec) -> str:
    try:
        out = subprocess.run([spec.chromium, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out.strip() or spec.chromium


def record(ok: list, fail: list, good: bool, elapsed_ms: float, code: str = "wrong_page") -> None:
    if good:
        ok.append([time.time(), round(elapsed_ms, 3), 0.0, 0.0])
    else:
        fail.append([time.time(), code])


def cpu_seconds(procs, children: bool = True) -> float:
    """CPU time of live processes, plus (``children``) that of the descendants they reaped:
    a renderer that exits during a run is still counted, in its parent's children times."""
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + (t.children_user + t.children_system if children else 0.0)
        except psutil.NoSuchProcess:
            pass
    return total


def process_kind(proc: psutil.Process, daemon_pid: int = 0) -> str | None:
    """What a process is, for the CPU by kind: ``daemon`` (``daemon_pid``), ``chromedriver``,
    ``browser`` (Chromium's main process), Chromium's ``--type`` (``renderer``,
    ``gpu-process``, ``utility``, ``zygote``, ``crashpad-handler``), else ``python`` (the
    in-process pool's own process). None once it is gone."""
    if proc.pid == daemon_pid:
        return "daemon"
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return None
    name = os.path.basename(cmdline[0]) if cmdline else ""
    if "chromedriver" in name:
        return "chromedriver"
    if "chrom" in name or "crashpad" in name:
        kinds = [a.split("=", 1)[1] for a in cmdline if a.startswith("--type=")]
        return kinds[0] if kinds else "browser"
    return "python"


class CpuByKind:
    """CPU seconds of a set of processes by :func:`process_kind`, between :meth:`__init__`
    and :meth:`done`: processes found at either end (``find()``, called at both) are
    counted; one that ended between the two counts in its reaper's children times
    (Chromium's zygote reaps its renderers)."""

    def __init__(self, find, daemon_pid: int = 0):
        self.find, self.daemon_pid = find, daemon_pid
        self.start = self._read()

    def _read(self) -> dict:
        out = {}
        for proc in self.find():
            kind = process_kind(proc, self.daemon_pid)
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            reaped = t.children_user + t.children_system if kind not in ("python", "daemon") else 0.0
            out[proc.pid] = (kind, t.user + t.system + reaped)
        return out

    def done(self) -> dict:
        """``{kind: CPU seconds}`` since the start."""
        end, total = self._read(), {}
        for pid, (kind, seconds) in end.items():
            if kind:
                total[kind] = total.get(kind, 0.0) + seconds - self.start.get(pid, (kind, 0.0))[1]
        return total


def rss_mb(procs) -> float:
    return round(total_rss(procs) / MB, 1)


class PageProcess:
    """``browserd.pages.PageServer`` (127.0.0.1, port picked by the OS) in a process of its
    own, so serving pages never competes for this process's GIL with in-process drivers."""

    CODE = ("import sys; from browserd.pages import PageServer; s = PageServer().start(); "
            "print(s.port, flush=True); sys.stdin.read(); s.stop()")

    def __enter__(self) -> "PageProcess":
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([self.proc.stdout], [], [], 30)
            self.port = int(self.proc.stdout.readline()) if ready else 0
            if not self.port:
                raise RuntimeError("the page server did not start")
        except BaseException:
            self.__exit__()
            raise
        self.host = "127.0.0.1"
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()  # its stdin.read() returns: it stops and exits
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- in-process ------------------------------------------------------------------------------

def load_page(driver, url: str, wait_for: str | None = None) -> str:
    """What a scraper does with its own warm driver: get, wait, page_source."""
    driver.get(url)
    if wait_for:
        WebDriverWait(driver, 10, poll_frequency=0.05).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, wait_for)))
    return driver.page_source


def run_threads(call, m: int, duration: float, count: int) -> dict:
    """``m`` threads each calling ``call(ident, i) -> bool`` (page correct) in a closed
    loop, at most ``count`` times and until ``duration`` seconds have passed."""
    ok, fail, lock = [], [], threading.Lock()
    start = time.time() + 0.05
    end = start + duration

    def loop(ident: int) -> None:
        time.sleep(max(0.0, start - time.time()))
        for i in range(count):
            if time.time() >= end:
                return
            t0 = time.perf_counter()
            try:
                good, code = call(ident, i), "wrong_page"
            except Exception as exc:  # counted, and the loop goes on
                good, code = False, type(exc).__name__
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                record(ok, fail, good, elapsed, code)

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(m)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, end - time.time()) + GRACE)
    return {"ok": list(ok), "fail": list(fail), "start": start, "end": end}


class InProcess:
    """``n`` warm browsers in this process, started in parallel like the daemon's."""

    def __init__(self, spec, n: int):
        self.spec, self.n = spec, n
        self.dir = tempfile.mkdtemp(prefix="browserd-bench-inproc-")
        self.browsers: list[Browser] = []

    def __enter__(self) -> "InProcess":
        browsers = [Browser(f"p{k}", self.spec, os.path.join(self.dir, f"p{k}")) for k in range(self.n)]
        self.browsers = browsers  # quit in __exit__ whatever happens below
        with ThreadPoolExecutor(max_workers=max(1, self.n)) as ex:
            list(ex.map(lambda b: b.start(), browsers))
        for b in browsers:
            b.driver.set_page_load_timeout(30)
        return self

    def __exit__(self, *exc) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(self.browsers))) as ex:
            list(ex.map(lambda b: b.quit(), self.browsers))
        shutil.rmtree(self.dir, ignore_errors=True)

    def rss_mb(self, n: int) -> float:
        return rss_mb([p for b in self.browsers[:n] for p in processes_of(b.pgid, b.workdir)])

    def run(self, n: int, m: int, url: str, duration: float, count: int = 10**6,
            wait_for: str | None = None, reset: bool = False) -> dict:
        """A pool of the first ``n`` browsers in a ``queue.Queue``, shared by ``m`` threads.
        ``reset``: each browser is reset after each page exactly as browserd does it
        (``reset_browser``, in a thread of its own while the caller goes on) before it goes
        back to the queue: the same work per page as browserd, without the daemon."""
        pool: queue.Queue = queue.Queue()
        for b in self.browsers[:n]:
            pool.put(b)
        resetter = ThreadPoolExecutor(max_workers=max(1, n)) if reset else None

        def give_back(b: Browser, page_url: str) -> None:
            try:
                reset_browser(b, True, [page_url])
            finally:
                pool.put(b)

        def call(ident: int, i: int) -> bool:
            marker = f"t{ident}x{i}"
            page_url = url.format(m=marker)
            b = pool.get(timeout=60)
            try:
                return marker in load_page(b.driver, page_url, wait_for)
            finally:
                if resetter:
                    resetter.submit(give_back, b, page_url)
                else:
                    pool.put(b)

        me = psutil.Process()
        kinds = CpuByKind(lambda: [me] + [p for b in self.browsers[:n] for p in processes_of(b.pgid, b.workdir)])
        before = cpu_seconds([me], children=False), self.browser_cpu(n)
        try:
            run = run_threads(call, m, duration, count)
        finally:
            if resetter:
                resetter.shutdown(wait=True)
        run["cpu_s"] = {"python": cpu_seconds([me], children=False) - before[0],
                        "browsers": self.browser_cpu(n) - before[1]}
        run["cpu_kinds_s"] = kinds.done()
        return run

    def reset_steps(self, url: str, count: int, wait_for: str | None = None) -> dict:
        """Median milliseconds of each step of browserd's reset (``reset_browser``: the
        log read, the stop, clear+prove; and the whole) after ``count`` loads of ``url``
        on the first browser, each reset as a job's: its URL and the page server's
        host:port as the origins the job touched."""
        b = self.browsers[0]
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        steps: dict = {}
        for i in range(count):
            page_url = url.format(m=f"r{i}")
            load_page(b.driver, page_url, wait_for)
            t0 = time.perf_counter()
            try:
                timing = reset_browser(b, True, [page_url], [(host, int(port))])
            except ResetUnproven:  # browserd would replace the browser: counted, and go on
                steps["unproven"] = steps.get("unproven", 0) + 1
                continue
            timing["total"] = (time.perf_counter() - t0) * 1000
            for k, v in timing.items():
                steps.setdefault(k, []).append(v)
        return {k: v if isinstance(v, int) else round(sorted(v)[len(v) // 2], 2) for k, v in steps.items()}

    def browser_cpu(self, n: int) -> float:
        return cpu_seconds([p for b in self.browsers[:n] for p in processes_of(b.pgid, b.workdir)])

    def breakdown(self, url: str, count: int) -> dict:
        return breakdown(self.browsers[0].driver, url, count)


def breakdown(d, url: str, count: int, raw: bool = False, first: int = 0) -> dict:
    """Median milliseconds of each WebDriver command of a fetch on a warm driver ``d`` (local
    chromedriver or a Grid session): what a scraper sends (get, page_source), and what
    browserd sends for a job of the generic site (set_page_load_timeout, get, one
    execute_script read, then the reset). ``raw``: every sample instead of the medians;
    ``first``: the number of the first fetch (each fetch's page has its own marker)."""
    origin = url.split("/static")[0]

    def cdp(cmd, **params):
        return lambda i: d.execute("executeCdpCommand", {"cmd": cmd, "params": params})

    steps = {
        "set_page_load_timeout": lambda i: d.set_page_load_timeout(30),
        "get": lambda i: d.get(url.format(m=f"b{i}")),
        "page_source": lambda i: d.page_source,
        "current_url+title": lambda i: (d.current_url, d.title),
        "execute_script(outerHTML,URL,title)": lambda i: d.execute_script(
            "return [document.documentElement.outerHTML, document.URL, document.title]"),
        "reset: window_handles": lambda i: d.window_handles,
        "reset: get about:blank": lambda i: d.get("about:blank"),
        "reset: clearBrowserCookies": cdp("Network.clearBrowserCookies"),
        "reset: clearDataForOrigin": cdp("Storage.clearDataForOrigin", origin=origin, storageTypes=STORAGE_TYPES),
    }
    times = {name: [] for name in steps}
    deadline = time.monotonic() + 60
    for i in range(first, first + count):
        if time.monotonic() > deadline:
            break
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(i)
            times[name].append((time.perf_counter() - t0) * 1000)
    if raw:
        return times
    return {name: sorted(v)[len(v) // 2] for name, v in times.items() if v}


def run_naive(spec, url: str, count: int, duration: float) -> tuple[dict, float]:
    """A new browser per request: start, get, page_source, quit. Returns (run, peak RSS MB)."""
    ok, fail, peak = [], [], 0.0
    root = tempfile.mkdtemp(prefix="browserd-bench-naive-")
    start = time.time()
    try:
        for i in range(count):
            if time.time() >= start + duration:
                break
            marker = f"n{i}"
            t0 = time.perf_counter()
            b = Browser(f"n{i}", spec, os.path.join(root, f"n{i}"))
            try:
                b.start()
                good = marker in load_page(b.driver, url.format(m=marker))
                peak = max(peak, rss_mb(processes_of(b.pgid, b.workdir)))
            except Exception as exc:
                fail.append([time.time(), type(exc).__name__])
                continue
            finally:
                b.quit()
            record(ok, fail, good, (time.perf_counter() - t0) * 1000)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"ok": ok, "fail": fail, "start": start, "end": time.time()}, peak


# -- browserd ----------------------------------------------------------------------------------

#: The egress policy refuses loopback by default (no SSRF); the benchmark's pages live there.
LOOPBACK_PAGES = "127.0.0.1/32"


def cli(*args: str, timeout: float = 180, root: str = ROOT) -> subprocess.CompletedProcess:
    """``python -m browserd ARGS`` with the default configuration (no BROWSERD_* from us).
    ``root``: the checkout whose daemon runs (another one: its code, not ours, e.g. a
    baseline commit; its Python client too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROWSERD_") and k != "NOTIFY_SOCKET"}
    env["BROWSERD_ALLOW_NETWORKS"] = LOOPBACK_PAGES  # every benchmark page is on 127.0.0.1
    if root != ROOT:
        env["PYTHONPATH"] = os.pathsep.join([root, os.path.join(root, "clients", "python")])
    return subprocess.run([sys.executable, "-m", "browserd", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL, cwd=root)


class Daemon:
    """A browserd daemon in a private state dir: ``start()`` returns the seconds ``browserd
    start`` took to return (ready); ``stop()`` always leaves no process of it behind.

    ``args``: more ``browserd start`` flags (``--driver-source grid --grid-url URL``).
    ``remote``: for browsers that are not the daemon's processes (a Grid on this machine),
    a callable returning ``{"browsers": [...], "grid": [...]}`` processes, counted in RSS and
    CPU; never stopped or killed by this class."""

    def __init__(self, n: int, args: tuple = (), remote=None, root: str = ROOT):
        self.n, self.args, self.remote, self.root = n, tuple(args), remote, root
        self.state_dir = tempfile.mkdtemp(prefix="browserd-bench-")
        self.pid = 0

    def start(self) -> float:
        t0 = time.perf_counter()
        result = cli("start", "--browsers", str(self.n), "--state-dir", self.state_dir, *self.args, root=self.root)
        seconds = time.perf_counter() - t0
        if result.returncode != 0:
            raise RuntimeError(f"browserd start --browsers {self.n} {' '.join(self.args)} exited "
                               f"{result.returncode}: {(result.stderr or result.stdout).strip()}")
        with open(os.path.join(self.state_dir, "state.json"), encoding="utf-8") as f:
            self.pid = json.load(f)["pid"]
        return seconds

    def processes(self) -> list[psutil.Process]:
        """The daemon and every process whose command line or XDG_CONFIG_HOME names our
        state dir (its browsers, crashpad included); never our client processes."""
        found, me = [], os.getpid()
        for proc in psutil.process_iter(["pid", "status"]):
            if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            try:
                if (proc.pid == self.pid or self.state_dir in " ".join(proc.cmdline())
                        or self.state_dir in proc.environ().get("XDG_CONFIG_HOME", "")):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def remote_processes(self) -> dict:
        return self.remote() if self.remote else {}

    def rss_mb(self) -> float:
        return rss_mb(self.processes() + [p for procs in self.remote_processes().values() for p in procs])

    def cpu(self) -> dict:
        """CPU seconds so far of the daemon process itself ("python"), of its browsers (local,
        or the Grid's chromedrivers and Chromiums) and of the Grid's Java ("grid")."""
        procs, remote = self.processes(), self.remote_processes()
        cpu = {"python": cpu_seconds([p for p in procs if p.pid == self.pid], children=False),
               "browsers": cpu_seconds([p for p in procs if p.pid != self.pid] + remote.get("browsers", []))}
        if "grid" in remote:
            cpu["grid"] = cpu_seconds(remote["grid"], children=False)
        return cpu

    def status(self) -> dict:
        from browserd_client import Client

        with Client(state_dir=self.state_dir, timeout=10) as client:
            return client.status()

    def served(self) -> int:
        return self.status()["jobs"]["served"]

    def settle(self, limit: float = 30.0) -> None:
        """Wait (bounded) until every browser is idle: no reset or replacement under way."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            b = self.status()["browsers"]
            if b["idle"] == b["size"] and not b["starting"] and not b["resetting"]:
                return
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            result = cli("stop", "--state-dir", self.state_dir, timeout=120, root=self.root)
            if result.returncode != 0:
                print(f"warning: browserd stop exited {result.returncode}: {result.stderr.strip()}",
                      file=sys.stderr)
        finally:
            left = self.processes()
            for proc in left:  # backstop: by pid, only processes found to be this daemon's
                try:
                    proc.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
            if left:
                print(f"warning: killed {len(left)} leftover processes of {self.state_dir}", file=sys.stderr)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def run(self, m: int, url: str, duration: float, count: int = 10**6, op: str = "fetch",
            params: dict | None = None, cells: list | None = None) -> dict:
        """``m`` client processes, started and connected before the clock starts.
        ``cells``: instead of ``url`` and ``params``, ``[{"url", "params", "expect"}, ...]``
        fetched round-robin, ``count`` rounds (see benchmarks/worker.py): every sample
        ends with ``[..., cell index, round]``."""
        procs: list[subprocess.Popen] = []
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        try:
            for k in range(m):
                env["BENCH_WORKER"] = json.dumps({"state_dir": self.state_dir, "op": op, "url": url,
                                                  "params": params or {}, "ident": k, "count": count,
                                                  **({"cells": cells} if cells else {})})
                procs.append(subprocess.Popen([sys.executable, "-m", "benchmarks.worker"], cwd=ROOT, env=env,
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE))
            deadline = time.monotonic() + 60
            for proc in procs:
                ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
                if not ready or proc.stdout.readline().strip() != b"ready":
                    raise RuntimeError(f"a client process did not connect (exit {proc.poll()})")
            start = time.time() + 0.05
            end = start + duration
            cpu0 = self.cpu()
            kinds = CpuByKind(self.processes, self.pid)
            for proc in procs:  # flushed, not closed: communicate() closes it
                proc.stdin.write(f"GO {start} {end}\n".encode())
                proc.stdin.flush()
            ok, fail, clients_cpu = [], [], 0.0
            for proc in procs:
                try:
                    out, _ = proc.communicate(timeout=max(0.0, end - time.time()) + GRACE)
                    lines = out.decode().strip().splitlines()
                    result = json.loads(lines[-1])
                    ok += result["ok"]
                    fail += result["fail"]
                    clients_cpu += result.get("cpu_s", 0.0)
                except (subprocess.TimeoutExpired, ValueError, IndexError):
                    fail.append([time.time(), "client_process_failed"])
            cpu1 = self.cpu()
            cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
            return {"ok": ok, "fail": fail, "start": start, "end": end, "cpu_s": {**cpu, "clients": clients_cpu},
                    "cpu_kinds_s": {**kinds.done(), "clients": clients_cpu}}
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()

    def memory(self, url: str, total: int, m: int, limit: float, every: float = 1.0) -> dict:
        """``total`` fetches by ``m`` client processes while the daemon tree's RSS is
        sampled every ``every`` seconds: ``{"samples": [[t, served, rss_mb], ...], "run"}``."""
        samples, done = [], threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while True:
                try:
                    samples.append([round(time.monotonic() - t0, 2), self.served(), self.rss_mb()])
                except Exception as exc:  # a sample lost is not a run lost
                    print(f"warning: RSS sample failed: {exc!r}", file=sys.stderr)
                if done.wait(every):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            run = self.run(m, url, limit, count=-(-total // m))
        finally:
            done.set()
            sampler.join(30)
        self.settle()
        samples.append([round(time.monotonic() - t0, 2), self.served(), self.rss_mb()])
        return {"samples": samples, "run": run}


# -- Selenium Grid -----------------------------------------------------------------------------

class GridProcess:
    """A Selenium Grid 4 standalone on 127.0.0.1 with ``slots`` Chrome slots (Debian's
    chromedriver and Chromium), started by the launcher the Grid tests use
    (``tests/support/grid.py``: the jar from npm, cached); stopped with every session and
    process it started. Raises ``GridUnavailable`` (no Java, or the jar could not be fetched) or RuntimeError."""

    def __init__(self, slots: int):
        from tests.support.grid import Grid

        self.grid = Grid(slots=slots)

    def start(self) -> "GridProcess":
        from tests.support.grid import JAR_VERSION

        try:
            self.grid.start()
            nodes = self.grid.status().get("nodes") or [{}]
        except BaseException:  # SIGTERM while it starts included: no Java left behind
            self.grid.stop()
            raise
        self.url = self.grid.url
        self.version = (nodes[0].get("version") or JAR_VERSION).split()[0]  # "4.48.0 (revision ...)"
        return self

    def stop(self) -> None:
        self.grid.stop()

    def __enter__(self) -> "GridProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def sessions(self) -> list[str]:
        return self.grid.sessions()

    def processes(self) -> dict:
        """``{"grid": [Java], "browsers": [chromedrivers, Chromiums]}``: every process whose
        command line or environment names the Grid's private temporary directory."""
        java = self.grid.proc.pid if self.grid.proc else 0
        procs = processes_of(java, self.grid.tmp)
        return {"grid": [p for p in procs if p.pid == java], "browsers": [p for p in procs if p.pid != java]}

    def spec(self):
        """The LaunchSpec of a daemon configured with ``driver_source = grid`` for this Grid."""
        from browserd.config import load
        from browserd.daemon.launch import launch_spec as derive

        return derive(load(env={"BROWSERD_DRIVER_SOURCE": "grid", "BROWSERD_GRID_URL": self.url}))

    def daemon_args(self) -> tuple:
        return ("--driver-source", "grid", "--grid-url", self.url)


def grid_unavailable() -> str | None:
    """Why no Grid can be started here (no Java, no chromedriver or chromium); None if one can."""
    from tests.support.grid import unavailable

    return unavailable()


def compare_breakdown(local_spec, grid: GridProcess, url: str, count: int) -> dict:
    """:func:`breakdown` on one local warm browser and on one Grid session, interleaved in
    rounds of a few fetches so a change of load skews both alike: ``{"local": {...},
    "grid": {...}}`` median ms per command."""
    root = tempfile.mkdtemp(prefix="browserd-bench-cmp-")
    browsers = {"local": Browser("cmp-local", local_spec, os.path.join(root, "local")),
                "grid": Browser("cmp-grid", grid.spec(), None)}
    try:
        for b in browsers.values():
            b.start()
            b.driver.set_page_load_timeout(30)
        times: dict = {name: {} for name in browsers}
        rounds, each = max(1, count // 5), min(count, 5)
        for r in range(rounds):
            for name, b in browsers.items():
                part = breakdown(b.driver, url, each, raw=True, first=r * each)
                for step, xs in part.items():
                    times[name].setdefault(step, []).extend(xs)
        return {name: {step: round(sorted(xs)[len(xs) // 2], 2) for step, xs in steps.items()}
                for name, steps in times.items()}
    finally:
        for b in browsers.values():
            b.quit()
        shutil.rmtree(root, ignore_errors=True)
