"""Site classes: built-in ones, modules named in ``site_modules``, ``*.py`` files in
``site_dirs`` and the entry-point group ``browserd.sites``.

Loading is what ``start`` and ``browserd reload`` (SIGHUP) do. A module that fails to
import, or a class that fails to instantiate (a bad policy, its ``__init__`` raised), is
reported by name with its error and skipped; on a reload, the sites it held before stay
as they were (like a web server that keeps its old configuration when the new one does
not parse). Per-site ``[sites.NAME]`` config blocks are applied here.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import os
import sys
import types
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from .base import Page, Site

logger = logging.getLogger(__name__)

BUILTIN_MODULES = ("browserd.sites.generic", "browserd.sites.scroll", "browserd.sites.click_more")
ENTRY_POINT_GROUP = "browserd.sites"

__all__ = ["Page", "Site", "Registry", "load_registry"]


@dataclass
class Registry:
    """The site classes of one load (built-ins, entry points, the site directory), by
    name. Built once per load and never changed after: a reload builds a new Registry,
    and a job keeps the one it started with (read-only, shared by every thread)."""
    sites: dict = field(default_factory=dict)     # name -> Site instance
    problems: list = field(default_factory=list)  # one line per module or class that failed
    origins: dict = field(default_factory=dict)   # name -> module (or file) it came from
    generation: int = 1                           # 1 at start, +1 per reload
    settings: dict = field(default_factory=dict)  # name -> [sites.NAME] block of the config

    def get(self, name: str) -> Site:
        """The site called ``name``; ``KeyError`` if there is none."""
        return self.sites[name]

    def names(self):
        """The names of every loaded site."""
        return self.sites.keys()

    def describe(self) -> list:
        """Every site's :meth:`Site.describe` with its ``origin``, sorted by name."""
        return [dict(self.sites[n].describe(), origin=self.origins.get(n, "")) for n in sorted(self.sites)]

    def add(self, cls, origin: str, label: str, previous: "Registry | None" = None) -> None:
        """Register site class ``cls`` found in ``origin``; problems start with ``label``
        (as its import failure would). A class that fails to instantiate keeps the site
        ``origin`` gave the ``previous`` load, as a failed import does."""
        if not (inspect.isclass(cls) and issubclass(cls, Site) and cls is not Site and cls.name):
            return
        if cls.name in self.sites:
            self.problems.append(f"{label}: site name {cls.name!r} is already taken by "
                                 f"{self.origins[cls.name]}; skipped")
            return
        try:
            site = cls(self.settings.get(cls.name))
        except Exception as exc:  # a bad policy in the class, or its __init__ failed
            self.problems.append(f"{label}: site {cls.name!r}: {type(exc).__name__}: {_one_line(exc)}")
            self.keep_previous(previous, origin, names={cls.name})
            return
        site.generation = self.generation
        self.sites[cls.name] = site
        self.origins[cls.name] = origin

    def add_module_classes(self, module, origin: str, label: str, previous: "Registry | None" = None) -> None:
        """Register every site class defined in ``module`` (see :meth:`add`)."""
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__:
                self.add(obj, origin, label, previous)

    def keep_previous(self, previous: "Registry | None", origin: str, names=None) -> None:
        """After ``origin`` (or, with ``names``, those of its classes) failed to load again:
        keep the sites it gave the previous load, and say so in the last problem."""
        if previous is None:
            return
        for name, was in previous.origins.items():
            if was == origin and name not in self.sites and (names is None or name in names):
                self.sites[name] = previous.sites[name]
                self.origins[name] = origin
                self.problems[-1] += f"; kept the previously loaded site {name!r}"


def _import_fresh(name: str, reload: bool):
    """Import ``name``, or re-execute it if it is already imported and this is a reload."""
    module = sys.modules.get(name)
    if module is not None and reload:
        return importlib.reload(module)
    return importlib.import_module(name)


def _load_file(path: str):
    """Execute a site file as a module of its own (a new module object every time)."""
    digest = hashlib.sha1(os.path.dirname(path).encode()).hexdigest()[:8]
    name = f"browserd_site_files.d{digest}.{os.path.splitext(os.path.basename(path))[0]}"
    with open(path, "rb") as f:
        source = f.read()
    # Compiled here rather than by the import system: its bytecode cache goes by mtime in
    # whole seconds and size, and would serve the old code of a file edited twice a second.
    code = compile(source, path, "exec", dont_inherit=True)
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def site_files(site_dirs) -> list:
    """The ``*.py`` files of ``site_dirs`` (not ``_*.py``), in a stable order."""
    files = []
    for directory in site_dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        files += [os.path.join(directory, n) for n in names if n.endswith(".py") and not n.startswith("_")]
    return files


def load_registry(site_modules=(), site_dirs=(), site_settings=None, previous: Registry | None = None) -> Registry:
    """Load every site class. ``previous`` is the registry being replaced (a reload)."""
    registry = Registry(settings=dict(site_settings or {}),
                        generation=previous.generation + 1 if previous else 1)
    for key, label, load in _sources(site_modules, site_dirs, reload=previous is not None):
        try:
            obj = load()
        except BaseException as exc:  # a broken user module must not take the daemon down
            if isinstance(exc, KeyboardInterrupt):
                raise
            registry.problems.append(f"{label}: {type(exc).__name__}: {_one_line(exc)}")
            registry.keep_previous(previous, key)
            continue
        if inspect.ismodule(obj):
            registry.add_module_classes(obj, key, label, previous)
        else:
            registry.add(obj, key, label, previous)
    for name in registry.settings:
        if name not in registry.sites:
            registry.problems.append(f"config: [sites.{name}] names no loaded site class")
    for line in registry.problems:
        logger.error("site classes: %s", line)
    return registry


def _sources(site_modules, site_dirs, reload: bool):
    """Where site classes come from, in order: ``(key, label, load)``, ``key`` naming the
    source across reloads (what a failing source keeps of the previous load), ``load()``
    returning a module or, for an entry point, a class."""
    for name in BUILTIN_MODULES:
        yield name, f"builtin {name}", lambda name=name: _import_fresh(name, False)
    for name in site_modules:
        yield name, f"site_modules {name}", lambda name=name: _import_fresh(name, reload)
    for path in site_files(site_dirs):
        yield path, f"site file {path}", lambda path=path: _load_file(path)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} ({ep.value})"
        yield origin, origin, lambda ep=ep: _load_entry_point(ep, reload)


def _load_entry_point(ep, reload: bool):
    if reload and ep.module in sys.modules:
        importlib.reload(sys.modules[ep.module])
    return ep.load()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
