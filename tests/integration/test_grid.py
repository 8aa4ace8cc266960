"""browserd on a real Selenium Grid 4: browsers are Remote sessions on the Grid."""

from __future__ import annotations

import time

import pytest

from browserd_client import Timeout
from tests.support.procs import browser_records
from tests.conftest import run_cli, run_workers
from tests.support.grid import Grid, GridUnavailable


@pytest.fixture(scope="module")
def grid():
    try:
        g = Grid(slots=4).start()
    except GridUnavailable as exc:
        pytest.skip(str(exc))
    yield g
    g.stop()


def _whole(daemon, n, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        s = daemon.status()
        if s["browsers"]["total"] == n and s["browsers"]["idle"] == n and not s["browsers"]["starting"]:
            return s
        assert time.monotonic() < deadline, s["browsers"]
        time.sleep(0.05)


def test_grid_browsers_fetch_serve_16_clients_and_stop_ends_sessions(start_daemon, grid, pages):
    daemon = start_daemon(2, "--driver-source", "grid", "--grid-url", grid.url)
    records = browser_records(daemon.state_dir)
    assert {r["session_id"] for r in records} == set(grid.sessions())
    assert not daemon.processes()[1:], "no local browser processes on a Grid"
    with daemon.client() as c:
        page = c.fetch(pages.url("/js", m="GRID-JS", delay=300), wait_for="#built")
    assert "GRID-JS" in page.source
    recs = run_workers(daemon, pages, processes=16, each=2)
    assert len(recs) == 32 and all(r["ok"] for r in recs), [r for r in recs if not r["ok"]][:3]
    result = daemon.stop()
    assert result.returncode == 0
    assert grid.sessions() == [], "stop must end every Grid session it opened"


def test_session_dropped_by_the_grid_is_replaced(start_daemon, grid, pages):
    daemon = start_daemon(2, "--driver-source", "grid", "--grid-url", grid.url)
    victim = browser_records(daemon.state_dir)[0]["session_id"]
    grid.delete(victim)
    with daemon.client() as c:
        for i in range(4):
            assert f"G{i}" in c.page_source(pages.url("/static", m=f"G{i}"))
    status = _whole(daemon, 2)
    assert status["events"]["replaced"] == 1
    assert victim not in grid.sessions() and len(grid.sessions()) == 2


def test_grid_job_deadline_interrupts_without_replacing(start_daemon, grid, pages):
    daemon = start_daemon(1, "--driver-source", "grid", "--grid-url", grid.url)
    with daemon.client() as c:
        with pytest.raises(Timeout):
            c.fetch(pages.url("/slow", s=60), timeout=2)
    status = _whole(daemon, 1)
    assert not status["events"].get("replaced")
    with daemon.client() as c:
        assert "AFTER" in c.page_source(pages.url("/static", m="AFTER"))


def test_unreachable_grid_fails_start_with_one_line(state_dir):
    result = run_cli("start", "--driver-source", "grid", "--grid-url", "http://127.0.0.1:9", state_dir=state_dir)
    assert result.returncode == 69
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0]


def test_grid_without_enough_chrome_slots_fails_start(state_dir, grid):
    result = run_cli("start", "--browsers", "5", "--driver-source", "grid", "--grid-url", grid.url,
                     state_dir=state_dir)
    assert result.returncode == 69
    assert "free Chrome slots of 4; 5 browsers were asked for" in result.stderr
