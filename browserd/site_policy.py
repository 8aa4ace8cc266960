"""Per-site policies: what a ``[sites.NAME]`` config block may set, and resource blocking
patterns. No Selenium here: the config validates these blocks at load time."""

from __future__ import annotations

#: What ``block`` can name, as Chromium URL patterns (``Network.setBlockedURLs``: ``*``
#: matches anything). A resource is recognised by its file extension.
BLOCK_KINDS = {
    "images": ("png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "bmp"),
    "fonts": ("woff", "woff2", "ttf", "otf", "eot"),
    "media": ("mp4", "webm", "ogg", "ogv", "mp3", "wav", "m4a", "m4v", "mov", "flac", "aac"),
    "stylesheets": ("css",),
}

#: The policies a site class sets as class attributes (and a config block may override).
CLASS_POLICIES = ("keep_session", "share_cache", "concurrency", "block", "block_urls", "timeout", "proxy_pool",
                  "dialogs")
#: JavaScript dialog types a ``dialogs`` policy may name, and what it may do with them.
DIALOG_TYPES = ("alert", "confirm", "prompt", "beforeunload")
DIALOG_ACTIONS = ("accept", "dismiss")
#: The per-site settings a config block may set, and what each must be.
POLICY_KEYS = CLASS_POLICIES + ("options",)


def block_patterns(kinds=(), urls=()) -> tuple:
    """URL patterns for the resource kinds in ``kinds`` plus the patterns in ``urls``."""
    patterns = []
    for kind in kinds:
        for ext in BLOCK_KINDS[kind]:
            patterns += [f"*.{ext}", f"*.{ext}?*"]
    return tuple(dict.fromkeys(patterns + list(urls)))


def check_policy(values: dict, where: str) -> dict:
    """Validate a per-site settings block; returns it, or raises ValueError naming ``where``."""
    unknown = set(values) - set(POLICY_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(POLICY_KEYS)})")
    for key, value in values.items():
        problem = None
        if key in ("keep_session", "share_cache") and not isinstance(value, bool):
            problem = "must be true or false"
        elif key == "concurrency" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            problem = "must be an integer >= 0 (0: no cap)"
        elif key == "block" and (not isinstance(value, (list, tuple))
                                 or any(v not in BLOCK_KINDS for v in value)):
            problem = f"must be a list of {', '.join(BLOCK_KINDS)}"
        elif key == "block_urls" and (not isinstance(value, (list, tuple))
                                      or not all(isinstance(v, str) and v for v in value)):
            problem = "must be a list of URL patterns (strings, * as wildcard)"
        elif key == "timeout" and (value is not None and (isinstance(value, bool)
                                   or not isinstance(value, (int, float)) or value <= 0)):
            problem = "must be a positive number of seconds"
        elif key == "proxy_pool" and value is not None and (not isinstance(value, str) or not value):
            problem = "must be the name of a [proxies.NAME] block"
        elif key == "dialogs" and (not isinstance(value, dict) or set(value) - set(DIALOG_TYPES)
                                   or any(v not in DIALOG_ACTIONS for v in value.values())):
            problem = (f"must be a table of {', '.join(DIALOG_TYPES)} -> "
                       f"{' or '.join(repr(a) for a in DIALOG_ACTIONS)}")
        elif key == "options" and not isinstance(value, dict):
            problem = "must be a table"
        if problem:
            raise ValueError(f"{where}.{key} = {value!r}: {problem}")
    return values
