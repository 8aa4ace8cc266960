"""The exit-code contract and the daemon's error tree (browserd.daemon.errors)."""

from __future__ import annotations

import errno
import logging
import re
from pathlib import Path

import pytest

from browserd import cli
from browserd import config as cfg
from browserd.browser import BrowserStartError
from browserd.daemon.errors import (AlreadyRunning, ConfigError, DependencyMissing, ExitCode, HaltServer,
                                    NotOurProcess, StartError, StateDirError)
from browserd.daemon.arbiter import Arbiter, StopLevel
from browserd.daemon.launch import start_failure

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_exit_code_is_in_the_readme_table():
    table = README.read_text().split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(n) for n in re.findall(r"^\| (\d+) \|", table, re.M)}
    # 130 (128 + SIGINT) is the shell's convention, not ours to document
    assert documented == {int(code) for code in ExitCode} - {ExitCode.INTERRUPTED}


@pytest.mark.parametrize("error, status", [
    (ConfigError("x"), 78), (StateDirError("x"), 78), (AlreadyRunning(7, "/p"), 4),
    (DependencyMissing("x"), 69), (StartError("x"), 1), (NotOurProcess("x"), 1),
    (StartError("x", ExitCode.UNAVAILABLE), 69),
])
def test_each_fatal_error_carries_its_exit_status(error, status):
    assert isinstance(error, HaltServer) and error.exit_status == status


def test_config_errors_keep_their_types_and_prefix():
    assert cfg.ConfigError is ConfigError and issubclass(ConfigError, ValueError)
    assert ConfigError("browsers: must be >= 1").line() == "config: browsers: must be >= 1"


def _failed_start(cause: BaseException) -> BrowserStartError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise BrowserStartError("browser 1 failed to start: boom") from exc
    except BrowserStartError as exc:
        return exc


@pytest.mark.parametrize("err", [errno.ENOENT, errno.EACCES, errno.ENOEXEC])
def test_a_browser_that_cannot_be_executed_is_a_missing_dependency(err):
    # decided from errno, whatever the message says (no "No such file" in it)
    assert start_failure(_failed_start(OSError(err, "introuvable"))) == ExitCode.UNAVAILABLE


def test_a_browser_that_fails_otherwise_is_a_failed_start():
    assert start_failure(_failed_start(RuntimeError("No such file or directory"))) == ExitCode.FAILURE
    assert start_failure(BrowserStartError("chromedriver did not report its port")) == ExitCode.FAILURE


def test_main_exits_with_the_status_the_error_carries(tmp_path, capsys):
    code = cli.main(["status", "--config", str(tmp_path / "missing.toml")])
    assert code == ExitCode.CONFIG and "browserd: config: config file" in capsys.readouterr().err


def _arbiter(tmp_path) -> Arbiter:
    return Arbiter(cfg.load(None, env={}, flags={"state_dir": str(tmp_path)}))


def test_sigint_is_logged_as_sigint_and_a_second_signal_forces(tmp_path, caplog):
    arbiter = _arbiter(tmp_path)
    with caplog.at_level(logging.INFO, logger="browserd"):
        arbiter.handle_sigint()
        assert arbiter._stop is StopLevel.DRAIN
        arbiter.handle_sigterm()
    assert arbiter._stop is StopLevel.FORCE
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("SIGINT: draining") and messages[1].startswith("SIGTERM: second stop signal")


def test_sigquit_forces_at_once(tmp_path):
    arbiter = _arbiter(tmp_path)
    arbiter.handle_sigquit()
    assert arbiter._stop is StopLevel.FORCE and arbiter.not_ready() == "draining"
