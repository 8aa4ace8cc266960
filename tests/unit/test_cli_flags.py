"""Every declared setting is a flag of start/run/restart, generated from config.SETTINGS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from browserd import cli
from browserd.cli.common import setting_flags
from browserd import config as cfg


def _text(setting: cfg.Setting, tmp_path) -> list[str]:
    """A valid command-line value for the setting (its default, written as a user would)."""
    if setting.name == "state_dir":
        return [setting.flag, str(tmp_path)]
    if setting.type is bool:
        return [setting.flag if setting.default else "--no-" + setting.flag[2:]]
    if setting.type is list:
        return [f"{setting.flag}={json.dumps(setting.default)}"]
    return [f"{setting.flag}={setting.default}"]


@pytest.mark.parametrize("command", ["start", "run", "restart"])
@pytest.mark.parametrize("setting", cfg.SETTINGS, ids=lambda s: s.name)
def test_every_declared_setting_is_accepted_as_a_flag(command, setting, tmp_path, monkeypatch):
    monkeypatch.delenv("BROWSERD_ALLOW_NETWORKS", raising=False)
    args = cli.build_parser().parse_args([command, *_text(setting, tmp_path)])
    config = cfg.load(args.config, env={}, flags=setting_flags(args))
    assert config.sources[setting.name] == "flag"
    expected = str(tmp_path) if setting.name == "state_dir" else setting.default
    assert getattr(config, setting.name) == expected


def test_flag_values_are_checked_and_named():
    args = cli.build_parser().parse_args(["start", "--job-timeout", "soon"])
    with pytest.raises(cfg.ConfigError, match=r"job_timeout \(from --job-timeout\)"):
        cfg.load(None, env={}, flags=setting_flags(args))


def test_list_flag_takes_a_json_array_with_commas():
    args = cli.build_parser().parse_args(["start", '--chromium-args=["--user-agent=a, b"]'])
    assert cfg.load(None, env={}, flags=setting_flags(args)).chromium_args == ["--user-agent=a, b"]


def test_help_lists_every_setting(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["start", "--help"])
    out = capsys.readouterr().out
    missing = [s.flag for s in cfg.SETTINGS if s.flag not in out]
    assert not missing


def test_the_cli_starts_without_importing_the_daemon():
    # every command pays for what `import browserd.cli` loads: Selenium and the pool are
    # imported by the commands that start or sweep a daemon, when they run
    code = ("import sys, browserd.cli; heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'selenium'"
            " or m in ('browserd.pool', 'browserd.browser', 'browserd.daemon.arbiter')); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"
