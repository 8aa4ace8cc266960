"""A job's steps on the pool's thread, with a fake browser and driver (no Chromium): the
per-job options seam runs before the navigation and after the read, the reset undoes
the job's changes first, and the browser ends idle again."""

from __future__ import annotations

import browserd.pool.execution as execution
import browserd.pool.siteprep as siteprep
import browserd.pool.upkeep as upkeep
from browserd.jobs import Job
from browserd.pool import Pool
from browserd.sites.base import Page
from browserd.stats import Stats

from .test_pool_logic import FakeBrowser


class FakeDriver:
    netlog = None
    dialog_policy = None
    current_url = "about:blank"

    def __init__(self, calls):
        self.calls = calls

    def set_page_load_timeout(self, seconds):
        pass

    def execute(self, command, params=None):
        self.calls.append(command if command == "getLog" else (params or {}).get("cmd", command))
        if command == "getLog":
            return {"value": []}
        if params and params.get("cmd") == "Page.getFrameTree":
            return {"value": {"frameTree": {"frame": {"id": "top"}}}}
        return {"value": {}}


class FakeHygiene:
    """The browser-level DevTools side of a browser: the frame tree and download behaviour."""

    def __init__(self, calls):
        self.calls = calls

    def main_frame(self):
        self.calls.append("Page.getFrameTree")
        return {"id": "top"}

    def set_downloads(self, directory):
        self.calls.append("Browser.setDownloadBehavior")

    def begin_stop(self):
        self.calls.append("begin_stop")
        return True


class DrivenBrowser(FakeBrowser):
    calls: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.driver = FakeDriver(self.calls)
        self.hygiene = FakeHygiene(self.calls)
        self.blocked, self.prepared = (), set()
        self.dressed_by = self.cache_of = None


class Site:
    name, keep_session, share_cache, concurrency, generation = "plain", False, False, 0, 1
    blocked_patterns = ()
    dialogs = None

    def setup_browser(self, driver, job):
        pass

    def before_job(self, driver, job):
        pass

    def after_job(self, driver, job, page):
        pass

    def fetch(self, driver, job):
        DrivenBrowser.calls.append("fetch")
        return Page(source="<p>x</p>", url=job.url, title="")


def test_options_seam_wraps_the_fetch_and_the_reset_undoes_the_jobs_changes(monkeypatch):
    calls = DrivenBrowser.calls = []

    def apply_options(ctx):
        calls.append("apply")
        ctx.on_reset(lambda driver: calls.append("undo"))

    def collect_outputs(ctx):
        calls.append("collect")
        ctx.outputs["value"] = 42

    monkeypatch.setattr(siteprep, "apply_options", apply_options)
    monkeypatch.setattr(execution, "collect_outputs", collect_outputs)
    monkeypatch.setattr(upkeep, "reset_browser", lambda *a, **k: calls.append("reset") or {})
    pool = Pool(spec=None, size=1, profiles_dir=None, stats=Stats(), browser_factory=DrivenBrowser)
    pool.start_browsers()
    job = Job(url="http://127.0.0.1/x", site="plain", timeout=5.0, params={})
    page, info = pool.run(job, Site())
    assert [c for c in calls if c in ("apply", "fetch", "collect", "undo", "reset")] == \
        ["apply", "fetch", "collect", "undo", "reset"]
    assert page.outputs == {"value": 42} and info["attempts"] == 1
    assert pool.snapshot()["idle"] == 1 and pool.snapshot()["browsers"][0]["jobs"] == 1


def test_the_performance_log_is_read_once_for_the_result_and_once_by_the_reset(monkeypatch, tmp_path):
    calls = DrivenBrowser.calls = []
    resets = []
    monkeypatch.setattr(upkeep, "reset_browser", lambda *a, **k: resets.append(k) or {})
    pool = Pool(spec=None, size=1, profiles_dir=str(tmp_path), stats=Stats(), browser_factory=DrivenBrowser)
    pool.start_browsers()
    job = Job(url="http://127.0.0.1/x", site="plain", timeout=5.0, params={})
    pool.run(job, Site())
    # The result's read on the job's thread; the rest of the log is the reset's (after the
    # blank navigation begun at the job's end: a read before the reply would wait for it).
    assert calls.count("getLog") == 1 and resets == [{"read_log": True}]
    assert calls.index("begin_stop") > calls.index("getLog")
    assert "Browser.setDownloadBehavior" in calls
    assert not (tmp_path / "b1" / "downloads" / f"job-{job.id}").exists()


def test_status_counts_browsers_replaced_because_their_reset_was_unproven(monkeypatch):
    """``status``'s ``reset`` part: the p50/p99 of proven resets and, always present, the
    number of browsers replaced because their reset could not prove them clean."""
    from browserd.browser.hygiene import ResetUnproven

    DrivenBrowser.calls = []
    outcomes = iter([{}, ResetUnproven("windows still open"), {}])

    def reset_browser(*args, **kwargs):
        result = next(outcomes)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(upkeep, "reset_browser", reset_browser)
    stats = Stats()
    assert stats.snapshot()["reset"]["unproven"] == 0
    pool = Pool(spec=None, size=1, profiles_dir=None, stats=stats, browser_factory=DrivenBrowser)
    pool.start_browsers()
    # The third job gets a browser only once the second's reset is over (its replacement).
    for n in range(3):
        pool.run(Job(url=f"http://127.0.0.1/{n}", site="plain", timeout=5.0, params={}), Site())
    reset = stats.snapshot()["reset"]
    assert reset["samples"] >= 1 and reset["p50"] is not None and reset["p99"] is not None
    assert reset["unproven"] == 1 and stats.snapshot()["events"]["replaced"] == 1
    pool.close()
