"""Smoke test of the benchmark harness: ``python -m benchmarks.run --quick`` runs end to
end, prints the table, writes the JSON and the chart, measures every system, and leaves
no process behind. No timing is asserted: the figures depend on the machine."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import psutil
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = ("in-process driver", "in-process pool", "naive (browser per request)", "browserd", "browserd ping",
           "browserd, images loaded", "browserd, images blocked", "in-process pool + reset",
           "browserd, egress policy on", "browserd, egress policy off", "browserd, direct",
           "browserd, via a local SOCKS5 proxy")

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _processes_under(path: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and (
                    path in " ".join(proc.cmdline()) or path in proc.environ().get("XDG_CONFIG_HOME", "")):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed (pip install matplotlib, "
                                               "the 'bench' extra): the benchmark draws its chart with it")
@pytest.mark.timeout(660)
def test_quick_benchmark_runs_end_to_end(tmp_path):
    out = tmp_path / "out"
    # Every state dir and profile of the run lives under here. Not under tmp_path: Chromium
    # puts its singleton socket under $TMPDIR, and a socket path has at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="browserd-bench-smoke-") as scratch:
        _run_and_check(out, scratch)


def _run_benchmark(args: list, scratch: str, timeout: float) -> str:
    """``python -m benchmarks.run ARGS`` with every state dir and profile under ``scratch``;
    its stdout, once it exited 0 within ``timeout``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROWSERD_")}
    env.update(TMPDIR=scratch, PYTHONPATH=ROOT)
    command = " ".join(["python -m benchmarks.run", *args[:-2]])  # without --out DIR
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.run", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the harness stops its daemons and browsers on SIGTERM
        try:
            proc.communicate(timeout=60)
        finally:
            proc.kill()
        pytest.fail(f"{command} did not finish within {timeout:.0f} s")
    assert proc.returncode == 0, f"benchmark exited {proc.returncode}:\n{stderr[-3000:]}"
    return stdout


def _run_and_check(out, scratch: str) -> None:
    stdout = _run_benchmark(["--quick", "--out", str(out)], scratch, 600)

    assert "| system | page | N | M | requests/s | p50 ms | p99 ms | failures | RSS MB | ratio |" in stdout
    assert "## Targets" in stdout and ("PASS" in stdout or "MISS" in stdout)

    [json_path] = glob.glob(str(out / "*.json"))
    [png_path] = glob.glob(str(out / "*.png"))
    with open(png_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(json_path, encoding="utf-8") as f:
        data = json.load(f)
    rows = data["rows"]
    for system in SYSTEMS:
        measured = [r for r in rows if r["system"] == system]
        assert measured, f"no row for {system}"
        for row in measured:
            assert row["rps"] > 0 and row["requests"] > 0, f"{system}: nothing measured: {row}"
            assert row["p50"] > 0 and row["p99"] >= row["p50"]
    assert {r["page"] for r in rows if r["system"] == "browserd"} >= {"static", "js", "large"}
    assert set(data["extra"]["startup_s"]) >= {"1", "4"}
    assert data["extra"]["memory"]["fetches"] > 0 and data["extra"]["memory"]["last_mb"] > 0
    assert all(t["value"] is not None for t in data["targets"]), data["targets"]
    batch = data["extra"]["batch"]
    assert batch["exit"] == 0 and batch["saved"] == batch["files"] == batch["urls"] > 0, batch
    assert "Resource blocking (a page of" in stdout and "Batch: `browserd fetch -i`" in stdout
    assert "The daemon's own cost at saturation" in stdout
    assert data["extra"]["egress"]["proxy_tunnels"] > 0, "the proxied jobs did not go through the proxy"
    assert any(t["target"].startswith("egress policy on / off") for t in data["targets"])
    # The options section (one round counted in --quick): every (page, option) cell served
    # with its output found in the reply (a job without it counts as a failure, not a sample).
    options = data["extra"]["options"]
    cells = {(c["page"], c["system"]) for c in options["cells"] if c["requests"] > 0 and c["p50"] > 0}
    assert cells >= {(page, variant) for page in ("static", "heavy") for variant in (
        "load", "screenshot, viewport", "screenshot, full page", "PDF", "evaluate", "wait_until networkidle",
        "wait_until settled", "request options (UA+viewport+timezone+headers)", "POST")}, options["cells"]
    assert cells >= {("xhr", "load"), ("xhr", "capture of 20 XHRs")}, options["cells"]
    assert "## Job options: the cost of each" in stdout and "| job asks for | static: p50 ms |" in stdout

    # Nothing of the run is left: no daemon, Chromium or chromedriver (init reaps lazily).
    deadline = time.monotonic() + 30
    while _processes_under(scratch) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [(p.pid, p.name()) for p in _processes_under(scratch)]
    assert not left, f"processes left behind by the benchmark: {left}"


def _grid_unavailable() -> str | None:
    from tests.support.grid import unavailable

    return unavailable()


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed (pip install matplotlib, "
                                               "the 'bench' extra): the benchmark draws its chart with it")
@pytest.mark.timeout(400)
def test_quick_grid_section_runs_end_to_end(tmp_path):
    """``--quick --only grid``: a real Grid, a daemon on it and one with local browsers, the
    comparison table in the report and the JSON, and nothing left running (Grid included)."""
    reason = _grid_unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "out"
    with tempfile.TemporaryDirectory(prefix="browserd-bench-smoke-") as scratch:
        stdout = _run_benchmark(["--quick", "--only", "grid", "--out", str(out)], scratch, 300)
        assert "## Local vs Grid" in stdout and "| N | M | req/s local | req/s Grid |" in stdout

        [json_path] = glob.glob(str(out / "*.json"))
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
        for system in ("browserd, local browsers", "browserd, Grid browsers"):
            measured = [r for r in data["rows"] if r["system"] == system]
            assert sorted(r["m"] for r in measured) == [1, 4], f"{system}: {measured}"
            for row in measured:
                assert row["rps"] > 0 and row["p50"] > 0 and row["failures"] == 0, row
        grid = data["extra"]["grid"]
        assert not grid.get("skipped") and grid["sessions_left"] == 0
        assert set(grid["breakdown_ms"]) == {"local", "grid"}

        deadline = time.monotonic() + 30
        while _processes_under(scratch) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [(p.pid, p.name()) for p in _processes_under(scratch)]
        assert not left, f"processes left behind by the benchmark: {left}"
