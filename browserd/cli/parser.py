"""The command line's parser: the shared options, every declared setting as a flag, and
the subparsers of each command group (:mod:`.lifecycle`, :mod:`.status`, :mod:`.fetch`)."""

from __future__ import annotations

import argparse

from .. import __version__
from .. import config as configmod
from . import fetch, lifecycle, status


def add_setting_flag(parser, setting: configmod.Setting) -> None:
    """One declared setting as a flag: ``--name`` (a bool: ``--name/--no-name``; a list:
    comma-separated, or a JSON array when a value holds a comma). Values are checked by
    config.load, which names the setting and the flag."""
    kwargs = {"dest": setting.name, "default": None, "help": f"{setting.doc} (${setting.env})"}
    if setting.type is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif setting.type is list:
        kwargs.update(metavar="A,B", help=f"{setting.doc} Comma-separated, or a JSON array "
                      f"('[\"a, b\"]'); a value starting with - needs {setting.flag}=VALUE (${setting.env})")
    else:
        kwargs["metavar"] = setting.type.__name__.upper() if setting.type in (int, float) else "TEXT"
    parser.add_argument(setting.flag, **kwargs)


def _common() -> argparse.ArgumentParser:
    """The options of every command: ``--config`` and ``--state-dir``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML config file (or $BROWSERD_CONFIG)")
    add_setting_flag(common, configmod.setting("state_dir"))
    return common


def _settings() -> argparse.ArgumentParser:
    """Every other setting as a flag (``start``, ``run``, ``restart``)."""
    server = argparse.ArgumentParser(add_help=False)
    group = server.add_argument_group("settings (each also BROWSERD_<NAME> in the environment, or NAME in "
                                      "the config file)")
    for setting in configmod.SETTINGS:
        if setting.name != "state_dir":  # every command has --state-dir (common)
            add_setting_flag(group, setting)
    return server


def build_parser() -> argparse.ArgumentParser:
    """The ``browserd`` parser; each subcommand sets ``func(args) -> ExitCode``."""
    common, server = _common(), _settings()
    parser = argparse.ArgumentParser(prog="browserd", description="A daemonized pool of warm headless Chromium browsers.")
    parser.add_argument("--version", action="version", version=f"browserd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lifecycle.add_parsers(sub, common, server)
    status.add_parsers(sub, common)
    fetch.add_parsers(sub, common)
    return parser
