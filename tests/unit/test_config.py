"""Config: precedence (defaults < TOML < env < flags), validation, path resolution."""

from __future__ import annotations

import json
import os

import pytest

from browserd import config as cfg
from browserd.daemon.statefiles import config_from_record, config_record


def test_defaults(tmp_path):
    c = cfg.load(env={"BROWSERD_STATE_DIR": str(tmp_path)})
    assert c.browsers == 2 and c.port == 0 and c.host == "127.0.0.1"
    assert c.allowed_schemes == ["http", "https"]
    assert c.state_dir == str(tmp_path) and c.log_path == os.path.join(str(tmp_path), "browserd.log")


def test_precedence_toml_then_env_then_flags(tmp_path):
    f = tmp_path / "b.toml"
    f.write_text("browsers = 3\nqueue_wait = 4.5\nlog_level = 'DEBUG'\n")
    env = {"BROWSERD_BROWSERS": "5", "BROWSERD_STATE_DIR": str(tmp_path)}
    c = cfg.load(str(f), env=env, flags={"browsers": 7})
    assert c.browsers == 7 and c.sources["browsers"] == "flag"
    c = cfg.load(str(f), env=env)
    assert c.browsers == 5 and c.sources["browsers"] == "$BROWSERD_BROWSERS"
    assert c.queue_wait == 4.5 and c.sources["queue_wait"] == str(f)
    assert c.log_level == "DEBUG"


def test_config_file_from_environment(tmp_path):
    f = tmp_path / "b.toml"
    f.write_text("[browserd]\nbrowsers = 4\n")
    assert cfg.load(env={"BROWSERD_CONFIG": str(f)}).browsers == 4


def test_lists_from_env_are_comma_separated():
    c = cfg.load(env={"BROWSERD_SITE_MODULES": "a.b, c.d", "BROWSERD_ALLOWED_SCHEMES": "https"})
    assert c.site_modules == ["a.b", "c.d"] and c.allowed_schemes == ["https"]


@pytest.mark.parametrize("flags, fragment", [
    ({"browsers": 0}, "browsers"),
    ({"port": 70000}, "port"),
    ({"driver_source": "ftp"}, "driver_source"),
    ({"log_level": "LOUD"}, "log_level"),
    ({"browsers": "two"}, "browsers"),
    ({"driver_source": "grid"}, "grid_url"),
    ({"nonsense": 1}, "nonsense"),
])
def test_bad_values_name_the_setting(flags, fragment):
    with pytest.raises(cfg.ConfigError, match=fragment):
        cfg.load(env={}, flags=flags)


def test_unknown_key_in_file_is_an_error(tmp_path):
    f = tmp_path / "b.toml"
    f.write_text("browserz = 1\n")
    with pytest.raises(cfg.ConfigError, match="unknown setting 'browserz'"):
        cfg.load(str(f), env={})


def test_invalid_toml_and_missing_file(tmp_path):
    f = tmp_path / "b.toml"
    f.write_text("browsers = \n")
    with pytest.raises(cfg.ConfigError, match="not valid TOML"):
        cfg.load(str(f), env={})
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.load(str(tmp_path / "none.toml"), env={})


def test_relative_paths_are_resolved_before_daemonizing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = cfg.load(env={}, flags={"state_dir": "st", "socket": "b.sock"})
    assert c.state_dir == str(tmp_path / "st") and c.socket == str(tmp_path / "b.sock")


def test_config_is_read_only():
    c = cfg.load(env={})
    with pytest.raises(AttributeError):
        c.browsers = 9


def test_every_setting_is_documented_in_the_readme():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8").read()
    for setting in cfg.SETTINGS:
        assert f"`{setting.name}`" in readme, setting.name


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.1", False),
    ("example.org", False),
])
def test_is_loopback(host, loopback):
    assert cfg.is_loopback(host) is loopback


def test_listening_beyond_loopback_needs_the_insecure_setting(tmp_path):
    with pytest.raises(cfg.ConfigError, match=r"host \(from flag\): '0.0.0.0' .*insecure_listen_any = true"):
        cfg.load(env={}, flags={"host": "0.0.0.0", "state_dir": str(tmp_path)})
    config = cfg.load(env={"BROWSERD_INSECURE_LISTEN_ANY": "true"},
                      flags={"host": "0.0.0.0", "state_dir": str(tmp_path)})
    assert config.insecure_listen_any is True and config.host == "0.0.0.0"
    # A Unix socket does not listen on any address: host is not used then.
    assert cfg.load(env={}, flags={"host": "0.0.0.0", "socket": str(tmp_path / "s"),
                                   "state_dir": str(tmp_path)}).socket


def test_readme_settings_table_is_the_generated_one():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8").read()
    assert cfg.markdown_table() in readme, "regenerate it: python -m browserd.config"


def test_lists_may_be_json_arrays_so_values_keep_their_commas():
    c = cfg.load(env={"BROWSERD_CHROMIUM_ARGS": '["--user-agent=a, b", "--mute-audio"]'})
    assert c.chromium_args == ["--user-agent=a, b", "--mute-audio"]
    assert cfg.load(env={}, flags={"allowed_schemes": '["https"]'}).allowed_schemes == ["https"]
    with pytest.raises(cfg.ConfigError, match="chromium_args.*BROWSERD_CHROMIUM_ARGS"):
        cfg.load(env={"BROWSERD_CHROMIUM_ARGS": '["unclosed'})


def test_a_chromium_argument_cut_at_its_comma_is_an_error_not_a_truncated_switch():
    ua = "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
    with pytest.raises(cfg.ConfigError, match=r"chromium_args .*'like Gecko\) Chrome/120.0'.* JSON array form"):
        cfg.load(env={"BROWSERD_CHROMIUM_ARGS": ua})
    assert cfg.load(env={"BROWSERD_CHROMIUM_ARGS": json.dumps([ua])}).chromium_args == [ua]
    assert cfg.load(env={"BROWSERD_CHROMIUM_ARGS": "--mute-audio, --disable-gpu"}).chromium_args == \
        ["--mute-audio", "--disable-gpu"]


def test_unknown_browserd_variable_is_named():
    with pytest.raises(cfg.ConfigError, match=r"\$BROWSERD_JOBTIMEOUT: unknown setting 'jobtimeout'"):
        cfg.load(env={"BROWSERD_JOBTIMEOUT": "5"})


@pytest.mark.parametrize("name", sorted(cfg.NOT_SETTINGS_ENV - {cfg.CONFIG_ENV}))
def test_test_only_variables_are_not_settings(name):
    assert cfg.load(env={name: "1"}).browsers == 2


def test_record_repeats_flags_env_and_file(tmp_path, monkeypatch):
    f = tmp_path / "b.toml"
    f.write_text("queue_wait = 4.5\n")
    monkeypatch.chdir(tmp_path)
    env = {"BROWSERD_CHROMIUM_ARGS": '["--a=1, 2"]', "BROWSERD_STATE_DIR": str(tmp_path / "st")}
    first = cfg.load(str(f), env=env, flags={"job_timeout": "5", "log_file": "x.log"})
    monkeypatch.chdir("/")
    again = config_from_record(config_record(first), first.state_dir)
    assert again.as_dict() == first.as_dict() and dict(again.sources) == dict(first.sources)
    assert again.path == str(f) and again.log_file == str(tmp_path / "x.log")


def test_log_level_in_any_case_is_taken_and_sets_the_root_logger(tmp_path):
    """`--log-level debug` was refused ('must be one of DEBUG, ...'): the level is taken in
    any case and the root logger gets it."""
    import logging

    from browserd.daemon.logs import close_logging, configure_logging

    c = cfg.load(env={"BROWSERD_STATE_DIR": str(tmp_path)}, flags={"log_level": "debug"})
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging(c, "foreground")
        assert root.level == logging.DEBUG
    finally:
        close_logging()
        root.setLevel(level)
