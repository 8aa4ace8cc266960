"""The site-class API on real daemons and real Chromium: hooks, session sites and
affinity, per-site caps and config blocks, resource blocking, the built-in scroll,
click_more and generic wait_js, site directories and ``browserd reload``."""

from __future__ import annotations

import json
import os
import re
import textwrap
import threading
import time

import pytest

from browserd_client import BadRequest, SiteError
from tests.conftest import ROOT, run_cli
from tests.support.gate_pages import GatePages

SITES_ENV = {"PYTHONPATH": ROOT, "BROWSERD_SITE_MODULES": "tests.support.hook_sites"}


def write_config(tmp_path, text: str) -> str:
    path = tmp_path / "browserd.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Poll an observable condition (bounded): the daemon's state, not a sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout}s")


def cookie_of(result) -> str:
    return re.search(r"<p id=\"cookies\">(.*?)</p>", result.source).group(1)


# -- hooks and sessions -------------------------------------------------------------------------

def test_hooks_run_once_per_browser_and_around_every_job(start_daemon, pages):
    daemon = start_daemon(1, env=SITES_ENV)
    with daemon.client() as c:
        first = c.fetch(pages.url("/static", m="h1"), site="hooks")
        second = c.fetch(pages.url("/static", m="h2"), site="hooks")
        failing = c.fetch(pages.url("/static", m="h3"), site="hooks", fail_after=True)
    assert "setup" in first.notes and "setup" not in second.notes  # once per browser
    assert first.notes["before"] == "about:blank" and second.notes["before"] == "about:blank"
    assert first.notes["after"] == "static h1" and second.notes["after"] == "static h2"
    # after_job raising is logged; the job's answer stands.
    assert failing.title == "static h3" and failing.notes["after"] == "static h3"
    assert "after_job raised RuntimeError: after_job failed on purpose" in daemon.log
    assert re.search(r"site=hooks: setup_browser done in \d", daemon.log)


def test_a_session_site_keeps_its_session_and_no_other_job_sees_it(start_daemon, pages):
    daemon = start_daemon(2, env=SITES_ENV)
    with daemon.client() as c:
        runs = [c.fetch(pages.url("/cookie/get"), site="account") for _ in range(3)]
        tokens = {cookie_of(r) for r in runs}
        assert len(tokens) == 1 and next(iter(tokens)).startswith("c=login"), tokens
        assert len({r.browser for r in runs}) == 1  # affinity: the browser with the session
        owner = runs[0].browser
        # Other sites' jobs get the clean browser, and see neither cookie nor storage.
        for _ in range(3):
            other = c.fetch(pages.url("/cookie/get"))
            assert other.browser != owner and cookie_of(other) == ""
        storage = c.fetch(pages.url("/storage/get"), wait_for="#v")
        assert "storage=null" in storage.source
        again = c.fetch(pages.url("/storage/get"), site="account")
        assert again.browser == owner and re.search(r"storage=login\d+", again.source)
    browsers = {b["id"]: b for b in daemon.status()["browsers"]["browsers"]}
    assert browsers[owner]["session_of"] == "account"


def test_a_session_browser_is_wiped_before_another_site_uses_it(start_daemon, pages):
    daemon = start_daemon(1, env=SITES_ENV)
    with daemon.client() as c:
        login = cookie_of(c.fetch(pages.url("/cookie/get"), site="account"))
        assert login.startswith("c=login")
        other = c.fetch(pages.url("/cookie/get"))  # the only browser: wiped first
        assert cookie_of(other) == ""
        assert "storage=null" in c.fetch(pages.url("/storage/get"), wait_for="#v").source
        relogin = cookie_of(c.fetch(pages.url("/cookie/get"), site="account"))
    assert relogin.startswith("c=login") and relogin != login  # setup_browser ran again
    assert daemon.status()["events"].get("sessions_wiped") == 1
    assert "wiped the session of site account" in daemon.log


# -- per-site caps and config blocks ---------------------------------------------------------------

def test_a_capped_site_queues_its_excess_while_other_sites_are_served(start_daemon, pages, tmp_path):
    config = write_config(tmp_path, """
        [sites.gated]
        concurrency = 1
        timeout = 25
    """)
    with GatePages(hold=30) as gate:
        daemon = start_daemon(2, "--config", config, env=SITES_ENV)
        results, errors = {}, []

        def fetch(mark):
            try:
                with daemon.client() as c:
                    results[mark] = c.fetch(gate.url("/gate", m=mark), site="gated", timeout=60)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=fetch, args=(m,)) for m in ("g1", "g2")]
        for t in threads:
            t.start()
        assert gate.wait_held(1, timeout=30)
        # The second gated job waits for the site's one slot, though a browser is idle...
        with daemon.client() as c:
            wait_for(lambda: c.status()["browsers"]["waiters"] == 1, what="a queued gated job")
            snap = c.status()["browsers"]
            assert snap["idle"] == 1 and snap["sites_in_use"] == {"gated": 1}
            # ...and another site's job takes that browser at once.
            other = c.fetch(pages.url("/static", m="free"))
            assert other.title == "static free"
            sites = {s["name"]: s for s in c.sites()}
        assert gate.in_flight == 1
        gate.release(2)
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert gate.max_in_flight == 1  # the cap held for the whole run
    assert {r.title for r in results.values()} == {"gate"} and len(results) == 2
    assert max(r.timing["queue_wait"] for r in results.values()) > 0
    assert sites["gated"]["concurrency"] == 1 and sites["gated"]["timeout"] == 25


def test_bad_site_config_blocks_are_one_line_errors(tmp_path, state_dir):
    cases = {
        "[sites.generic]\nconcurrency = -1\n": "concurrency = -1: must be an integer >= 0",
        "[sites.generic]\nblock = ['pictures']\n": "must be a list of images, fonts, media, stylesheets",
        "[sites.generic]\nspeed = 3\n": "unknown setting(s) speed",
        "[sites.generic]\nconcurrency = 9\n": "is more than browsers = 2",
        "sites = 3\n": "one table per site",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(text)
        result = run_cli("start", "--config", str(path), state_dir=state_dir, timeout=60)
        assert result.returncode == 78, (text, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- resource blocking ---------------------------------------------------------------------------

def test_blocked_images_are_not_loaded_and_blocking_ends_with_the_site(start_daemon, pages):
    daemon = start_daemon(1, env=SITES_ENV)
    url = pages.url("/images", n=20)
    with daemon.client() as c:
        plain = c.fetch(url, site="image_count")
        blocked = c.fetch(url, site="image_count_blocked")
        after = c.fetch(url, site="image_count")  # same browser: blocking lifted
        sites = {s["name"]: s for s in c.sites()}
    assert plain.notes["loaded_images"] == 20
    assert blocked.notes["loaded_images"] == 0 and "<p id=\"marker\">" in blocked.source
    assert after.notes["loaded_images"] == 20
    assert sites["image_count_blocked"]["block"] == ["images"]


def test_blocking_from_the_config_block(start_daemon, pages, tmp_path):
    config = write_config(tmp_path, """
        [sites.image_count]
        block_urls = ["*/img/1*"]
    """)
    daemon = start_daemon(1, "--config", config, env=SITES_ENV)
    with daemon.client() as c:
        result = c.fetch(pages.url("/images", n=20), site="image_count")
    # /img/1.png and /img/10.png ... /img/19.png are blocked: 11 of 20.
    assert result.notes["loaded_images"] == 9


# -- built-in sites ------------------------------------------------------------------------------

def test_scroll_until_the_page_stops_growing_or_enough_items(shared_daemon, pages):
    with shared_daemon.client() as c:
        everything = c.fetch(pages.url("/infinite", total=60, batch=10), site="scroll")
        enough = c.fetch(pages.url("/infinite", total=60, batch=10), site="scroll",
                         item_selector="li.item", min_items=25)
        bounded = c.fetch(pages.url("/infinite", total=60, batch=10), site="scroll", max_scrolls=2)
        with pytest.raises(BadRequest, match="'min_items' needs 'item_selector'"):
            c.fetch(pages.url("/infinite"), site="scroll", min_items=5)
        with pytest.raises(BadRequest, match="'max_scrolls' must be between 0 and 1000"):
            c.fetch(pages.url("/infinite"), site="scroll", max_scrolls=10**6)
    assert "item 59" in everything.source and everything.source.count("class=\"item\"") == 60
    assert everything.notes["scrolls"] == 6  # five that grew it, one that found the end
    assert enough.notes["items"] == 30 and "item 59" not in enough.source
    assert bounded.source.count("class=\"item\"") == 30 and bounded.notes["scrolls"] == 2


def test_click_more_until_the_button_is_gone_or_n_clicks(shared_daemon, pages):
    with shared_daemon.client() as c:
        everything = c.fetch(pages.url("/more", total=50, batch=10), site="click_more", selector="#more")
        two = c.fetch(pages.url("/more", total=50, batch=10), site="click_more", selector="#more",
                      max_clicks=2, item_selector="li.item")
        none = c.fetch(pages.url("/static"), site="click_more", selector="#more")
        with pytest.raises(BadRequest, match="'selector' is required"):
            c.fetch(pages.url("/more"), site="click_more")
    assert everything.source.count("class=\"item\"") == 50 and "id=\"more\"" not in everything.source
    assert everything.notes["clicks"] == 4
    assert two.notes == {"clicks": 2, "items": 30}
    assert none.notes["clicks"] == 0 and none.title == "static MARKER"


def test_generic_waits_for_a_javascript_condition(shared_daemon, pages):
    with shared_daemon.client() as c:
        built = c.fetch(pages.url("/js", m="jsw", delay=300), wait_js="document.title == 'built'")
        with pytest.raises(SiteError, match="SyntaxError|Unexpected"):
            c.fetch(pages.url("/static"), wait_js="this is not javascript")
    assert built.title == "built" and "jsw" in built.source


# -- site directories and reload -----------------------------------------------------------------

PROBE = """
from browserd.sites import Page, Site


class Probe(Site):
    name = "probe"
    description = "test: a site from a directory"

    def fetch(self, driver, job):
        driver.get(job.url)
        page = self.read_page(driver)
        return Page(source=page.source, url=page.url, title="{version}")
"""


def test_site_directory_and_reload_without_restarting_browsers(start_daemon, pages, tmp_path):
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "probe.py").write_text(PROBE.format(version="v1"))
    (sites / "_helper.py").write_text("raise RuntimeError('not a site file: never loaded')\n")
    env = {"BROWSERD_SITE_DIRS": str(sites)}
    daemon = start_daemon(1, env=env)
    pids = sorted(b["chromium_pid"] for b in daemon.status()["browsers"]["browsers"])
    with daemon.client() as c:
        assert c.fetch(pages.url("/static"), site="probe").title == "v1"

        # A new version and a broken new file: the new version serves, the broken file is
        # named with its error, and reload says so with exit 1.
        (sites / "probe.py").write_text(PROBE.format(version="v2"))
        (sites / "broken.py").write_text("import no_such_module_here\n")
        result = run_cli("reload", state_dir=daemon.state_dir, env=env)
        assert result.returncode == 1, result.stderr
        assert "broken.py: ModuleNotFoundError: No module named 'no_such_module_here'" in result.stderr
        assert "probe" in result.stdout and "browsers kept" in result.stdout
        assert c.fetch(pages.url("/static"), site="probe").title == "v2"

        # A version that does not compile keeps the one loaded before.
        (sites / "probe.py").write_text("class Probe(:\n")
        (sites / "broken.py").unlink()
        result = run_cli("reload", state_dir=daemon.state_dir, env=env)
        assert result.returncode == 1
        assert "probe.py: SyntaxError" in result.stderr and "kept the previously loaded site 'probe'" in result.stderr
        assert c.fetch(pages.url("/static"), site="probe").title == "v2"

        (sites / "probe.py").write_text(PROBE.format(version="v3"))
        result = run_cli("reload", state_dir=daemon.state_dir, env=env)
        assert result.returncode == 0, result.stderr
        assert c.fetch(pages.url("/static"), site="probe").title == "v3"
        status = c.status()
    assert status["site_problems"] == [] and status["sites_generation"] == 4
    assert sorted(b["chromium_pid"] for b in status["browsers"]["browsers"]) == pids


BAD_POLICIES = """
from browserd.sites import Site


class Images(Site):
    name = "images_as_a_string"
    block = "images"


class Negative(Site):
    name = "negative_cap"
    concurrency = -1
"""


def test_a_broken_site_module_at_start_is_reported_and_the_daemon_serves(start_daemon, pages, tmp_path):
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "bad.py").write_text("1/0\n")
    (sites / "policies.py").write_text(BAD_POLICIES)
    daemon = start_daemon(1, env={"BROWSERD_SITE_DIRS": str(sites)})
    status = daemon.status()
    policies = f"site file {sites / 'policies.py'}"
    assert status["site_problems"] == [
        f"site file {sites / 'bad.py'}: ZeroDivisionError: division by zero",
        f"{policies}: site 'images_as_a_string': ValueError: site class Images.block = 'images': "
        "must be a list of images, fonts, media, stylesheets",
        f"{policies}: site 'negative_cap': ValueError: site class Negative.concurrency = -1: "
        "must be an integer >= 0 (0: no cap)",
    ]
    assert "bad.py: ZeroDivisionError: division by zero" in daemon.log
    assert "site class Negative.concurrency = -1" in daemon.log
    with daemon.client() as c:
        assert c.fetch(pages.url("/static", m="ok")).title == "static ok"
        described = c.sites(problems=True)
    assert described["problems"] == status["site_problems"]
    assert {"images_as_a_string", "negative_cap"}.isdisjoint(s["name"] for s in described["sites"])
    # `browserd sites` prints a running daemon's problems too, as it does for the local fallback.
    listed = run_cli("sites", state_dir=daemon.state_dir)
    assert listed.returncode == 0 and "# site classes from daemon" in listed.stdout
    assert listed.stderr.splitlines() == [f"browserd: warning: {p}" for p in status["site_problems"]]


PATIENT = """
from browserd.sites import Site


class Patient(Site):
    name = "patient"
    timeout = 7  # longer than the daemon's job_timeout

    def fetch(self, driver, job):
        driver.get(job.url)
        job.notes["timeout"] = job.timeout
        return self.read_page(driver)
"""


def test_cli_fetch_without_timeout_gets_the_sites_own_and_json_has_the_notes(start_daemon, pages, tmp_path):
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "patient.py").write_text(PATIENT)
    env = {"BROWSERD_SITE_DIRS": str(sites), "BROWSERD_JOB_TIMEOUT": "5"}
    daemon = start_daemon(1, env=env)
    url = pages.url("/static", m="cli")

    def cli_fetch(*flags) -> dict:
        result = run_cli("fetch", url, "--site", "patient", "--json", *flags, state_dir=daemon.state_dir, env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    default = cli_fetch()
    assert default["title"] == "static cli" and default["notes"] == {"timeout": 7.0}
    assert cli_fetch("--timeout", "3")["notes"] == {"timeout": 3.0}
    assert cli_fetch("--timeout", "600")["notes"] == {"timeout": 7.0}  # capped at the site's


# -- the documented example (docs/sites.md) -------------------------------------------------------

EXAMPLE_SITES = os.path.join(ROOT, "examples", "sites")


def test_the_documented_example_site_loads_n_items_behind_its_consent_cookie(start_daemon, pages):
    daemon = start_daemon(1, env={"BROWSERD_SITE_DIRS": EXAMPLE_SITES})
    assert daemon.status()["site_problems"] == []
    listing = pages.url("/more", total=50, batch=10)
    with daemon.client() as c:
        some = c.fetch(listing, site="catalogue", min_items=25)
        every = c.fetch(listing, site="catalogue")
        # before_job set the consent cookie before the page was requested...
        consent = c.fetch(pages.url("/cookie/get"), site="catalogue")
        # ...and the reset took it away again: the next job on the one browser sees none.
        after = c.fetch(pages.url("/cookie/get"))
        with pytest.raises(BadRequest, match="'min_items' must be between 1 and 10000, not 0"):
            c.fetch(listing, site="catalogue", min_items=0)
        described = {s["name"]: s for s in c.sites()}["catalogue"]
    assert some.notes == {"items": 30, "clicks": 2, "complete": False}
    assert some.source.count('class="item"') == 30 and 'id="more"' in some.source
    assert every.notes == {"items": 50, "clicks": 4, "complete": True}
    assert every.source.count('class="item"') == 50 and 'id="more"' not in every.source
    assert cookie_of(consent) == "consent=yes"
    assert consent.notes == {"items": 0, "clicks": 0, "complete": True}
    assert cookie_of(after) == "" and after.browser == consent.browser
    assert described["block"] == ["images", "fonts"]
    assert described["origin"] == os.path.join(EXAMPLE_SITES, "catalogue.py")


def test_reload_when_not_running(state_dir):
    result = run_cli("reload", state_dir=state_dir)
    assert result.returncode == 3 and "not running" in result.stdout
