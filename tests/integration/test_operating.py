"""Operating it (issue 15): restart keeps the configuration, clients ride through a restart,
status scripts can trust (stopped, stale: JSON and exit 3), one-line exit 78 for bad paths,
and a failed start keeps chromedriver's output in the log. Real daemons, real Chromium."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading

import pytest

from browserd_client import Client
from tests.conftest import ROOT, run_cli
from tests.support.procs import wait_gone

PROBE = '''
from browserd.sites import Page, Site


class Custom(Site):
    name = "custom"
    description = "test: a site from the config file's site_dirs"

    def fetch(self, driver, job):
        driver.get(job.url)
        page = self.read_page(driver)
        return Page(source=page.source, url=page.url, title="custom " + page.title)
'''


def _custom_config(tmp_path) -> str:
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "custom.py").write_text(PROBE)
    path = tmp_path / "browserd.toml"
    path.write_text(textwrap.dedent("""\
        site_dirs = ["sites"]
        queue_wait = 20
    """))
    return str(path)


def test_restart_keeps_the_config_file_flags_and_environment(start_daemon, pages, tmp_path):
    config = _custom_config(tmp_path)
    daemon = start_daemon(1, "--config", config, "--job-timeout", "40", env={"BROWSERD_IDLE_TIMEOUT": "120"})
    with daemon.client() as c:
        assert c.fetch(pages.url("/static", m="before"), site="custom").title == "custom static before"
    before = daemon.status()
    assert before["config_file"] == config

    restarted = run_cli("restart", state_dir=daemon.state_dir)  # no --config, no flags, no env
    print(restarted.stdout, restarted.stderr)
    assert restarted.returncode == 0, restarted.stderr
    status = daemon.status()
    assert status["pid"] != before["pid"] and status["config_file"] == config
    with daemon.client() as c:
        assert c.fetch(pages.url("/static", m="after"), site="custom").title == "custom static after"
    recorded = json.load(open(os.path.join(daemon.state_dir, "config.json")))  # removed by a clean stop
    assert recorded["flags"]["job_timeout"] == 40.0 and float(recorded["env"]["BROWSERD_IDLE_TIMEOUT"]) == 120
    assert oct(os.stat(os.path.join(daemon.state_dir, "config.json")).st_mode & 0o777) == "0o600"
    plain = run_cli("status", state_dir=daemon.state_dir)
    assert f"config file: {config}" in plain.stdout


def test_a_client_loop_rides_through_a_restart_with_no_failed_fetch(start_daemon, pages):
    """A loop of fetches (the default Client: Backoff(deadline=30)) while `browserd restart`
    stops and starts the daemon: every fetch succeeds."""
    daemon = start_daemon(2)
    done, failures, stop = [], [], threading.Event()
    restarted, warm = threading.Event(), threading.Event()
    after = []

    def loop():
        with Client(state_dir=daemon.state_dir) as client:
            n = 0
            # Bounded: until 5 fetches completed after the restart returned, at most 2000.
            while not stop.is_set() and len(after) < 5 and n < 2000:
                n += 1
                try:
                    page = client.fetch(pages.url("/static", m=f"loop{n}"), timeout=30)
                    assert page.title == f"static loop{n}"
                    done.append(n)
                    if len(done) >= 3:
                        warm.set()
                    if restarted.is_set():
                        after.append(n)
                except Exception as exc:  # noqa: BLE001 - counted, reported below
                    failures.append(f"{n}: {exc!r}")

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        assert warm.wait(timeout=60), failures  # the loop is fetching: now restart under it
        result = run_cli("restart", state_dir=daemon.state_dir)
        restarted.set()
        assert result.returncode == 0, result.stderr
    finally:
        thread.join(timeout=120)
        stop.set()
        thread.join(timeout=30)
    print(f"client loop through a restart: {len(done)} fetches ok, {len(failures)} failed, "
          f"{len(after)} after the restart returned; {failures[:5]}")
    assert not thread.is_alive()
    assert failures == [] and len(after) == 5


def test_status_json_when_stopped_is_json_with_exit_3(state_dir):
    result = run_cli("status", "--json", state_dir=state_dir)
    assert result.returncode == 3
    assert json.loads(result.stdout) == {"running": False, "stale": False, "state_dir": state_dir}
    result = run_cli("status", state_dir=os.path.join(state_dir, "never-made"))
    assert result.returncode == 3 and result.stdout.strip() == "browserd is not running"


def test_status_of_a_sigkilled_daemon_is_not_running_stale(start_daemon):
    daemon = start_daemon(1)
    os.kill(daemon.pid, signal.SIGKILL)
    assert not wait_gone([daemon.pid], timeout=30)
    plain = run_cli("status", state_dir=daemon.state_dir, timeout=20)
    print(plain.stdout, plain.stderr)
    assert plain.returncode == 3 and plain.stdout.startswith("browserd is not running (stale: pid")
    as_json = run_cli("status", "--json", state_dir=daemon.state_dir, timeout=20)
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 3 and report["running"] is False and report["stale"] is True
    assert report["pid"] == daemon.pid and "state.json" in report["left"]
    # the start fixture's stop cleans up the stale daemon's browsers and checks nothing is left


def test_plain_status_lists_site_problems(start_daemon, tmp_path):
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "broken.py").write_text("import no_such_module_here\n")
    daemon = start_daemon(1, "--site-dirs", str(sites))
    plain = run_cli("status", state_dir=daemon.state_dir)
    assert plain.returncode == 0
    assert "1 load problem:" in plain.stdout and "no_such_module_here" in plain.stdout
    fields = json.loads(run_cli("status", "--json", state_dir=daemon.state_dir).stdout)
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    table = readme[readme.index("The `status` reply"):]
    undocumented = [key for key in fields if f"`{key}`" not in table]
    assert not undocumented, f"status fields missing from the README's table: {undocumented}"


# -- bad paths: one line, exit 78 ---------------------------------------------------------------

def _one_line_78(result) -> None:
    print(result.stderr)
    assert result.returncode == 78, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("case", ["state_dir_under_a_file", "log_in_missing_dir", "log_under_a_file",
                                  "pidfile_is_a_directory"])
def test_bad_paths_at_start_are_one_line_exit_78(case, tmp_path):
    state = tmp_path / "state"
    args = {
        "state_dir_under_a_file": ["--state-dir", "/etc/passwd/x"],
        "log_in_missing_dir": ["--state-dir", str(state), "--log-file", str(tmp_path / "missing" / "b.log")],
        "log_under_a_file": ["--state-dir", str(state), "--log-file", "/etc/passwd/b.log"],
        "pidfile_is_a_directory": ["--state-dir", str(state)],
    }[case]
    if case == "pidfile_is_a_directory":
        (state / "browserd.pid").mkdir(parents=True)
        state.chmod(0o700)
    result = run_cli("start", "--browsers", "1", *args, timeout=120)
    _one_line_78(result)
    assert not (state / "state.json").exists()


def test_bad_paths_for_an_unprivileged_user_are_one_line_exit_78():
    from tests.integration.test_least_privilege import AS_NOBODY, NOBODY, _cannot_run_as_nobody, _env

    why = _cannot_run_as_nobody()
    if why:
        pytest.skip(why)
    with tempfile.TemporaryDirectory(prefix="browserd-paths-") as base:  # in /tmp: nobody can enter
        os.chmod(base, 0o755)
        _bad_paths_as(pathlib.Path(base), AS_NOBODY, NOBODY, _env)


def _bad_paths_as(tmp_path, AS_NOBODY, NOBODY, _env):
    locked = tmp_path / "root-only"
    locked.mkdir(mode=0o755)
    own = tmp_path / "nobody"
    own.mkdir(mode=0o700)
    os.chown(own, NOBODY, NOBODY)
    cases = {
        "log in a dir it cannot write": ["--state-dir", str(own / "state"), "--log-file", str(locked / "b.log")],
        "state dir in a dir it cannot write": ["--state-dir", str(locked / "state")],
    }
    for what, args in cases.items():
        result = subprocess.run(AS_NOBODY + [sys.executable, "-m", "browserd", "start", "--browsers", "1", *args],
                                capture_output=True, text=True, timeout=120, env=_env(str(own)), cwd="/")
        print(what, "->", result.stderr.strip())
        _one_line_78(result)
        assert ("log_file" in result.stderr) == what.startswith("log")


def test_a_failed_start_keeps_chromedriver_output_in_the_log(state_dir):
    result = run_cli("start", "--browsers", "1", "--chromium", "/bin/false", "--start-timeout", "30",
                     state_dir=state_dir, timeout=120)
    print(result.stderr)
    assert result.returncode == 1
    log = os.path.join(state_dir, "browserd.log")
    assert f"chromedriver and Chromium output: {log}" in result.stderr
    text = open(log, encoding="utf-8").read()
    assert "failed to start; its chromedriver.out ends:" in text and "ChromeDriver" in text
    assert len(result.stderr.strip().splitlines()) == 1  # the output is in the log, not on the terminal


def test_an_unknown_browserd_variable_is_named_exit_78(state_dir):
    result = run_cli("start", state_dir=state_dir, env={"BROWSERD_JOBTIMEOUT": "5"})
    _one_line_78(result)
    assert "$BROWSERD_JOBTIMEOUT" in result.stderr
