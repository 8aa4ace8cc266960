"""Site classes: built-in ones, modules named in the config, and the entry-point group
``browserd.sites``. A module that fails to import is reported by name and skipped."""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from .base import Page, Site

logger = logging.getLogger(__name__)

BUILTIN_MODULES = ("browserd.sites.generic",)
ENTRY_POINT_GROUP = "browserd.sites"

__all__ = ["Page", "Site", "Registry", "load_registry"]


@dataclass
class Registry:
    sites: dict = field(default_factory=dict)     # name -> Site instance
    problems: list = field(default_factory=list)  # one line per module that failed

    def get(self, name: str) -> Site:
        return self.sites[name]

    def names(self):
        return self.sites.keys()

    def describe(self) -> list:
        return [self.sites[n].describe() for n in sorted(self.sites)]

    def add(self, cls, origin: str) -> None:
        if not (inspect.isclass(cls) and issubclass(cls, Site) and cls is not Site and cls.name):
            return
        if cls.name in self.sites and type(self.sites[cls.name]) is not cls:
            self.problems.append(f"{origin}: site name {cls.name!r} is already taken by "
                                 f"{type(self.sites[cls.name]).__module__}; skipped")
            return
        self.sites[cls.name] = cls()

    def add_module(self, module_name: str, origin: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a broken user module must not take the daemon down
            self.problems.append(f"{origin} {module_name}: {type(exc).__name__}: {exc}")
            return
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__:
                self.add(obj, module_name)


def load_registry(site_modules=()) -> Registry:
    registry = Registry()
    for name in BUILTIN_MODULES:
        registry.add_module(name, "builtin")
    for name in site_modules:
        registry.add_module(name, "site_modules")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            registry.problems.append(f"entry point {ep.name} ({ep.value}): {type(exc).__name__}: {exc}")
            continue
        if inspect.ismodule(obj):
            registry.add_module(obj.__name__, f"entry point {ep.name}")
        else:
            registry.add(obj, f"entry point {ep.name}")
    for line in registry.problems:
        logger.error("site classes: %s", line)
    return registry
