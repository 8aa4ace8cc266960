"""A fetch job: validated arguments, its deadline, and how it can be aborted."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from browserd_client.errors import BadRequest, ForbiddenUrl

MAX_URL_LENGTH = 8192
_ids = itertools.count(1)


def check_url(url, allowed_schemes) -> str:
    """Return ``url`` if a shared browser may load it, else raise a clear error."""
    if not isinstance(url, str) or not url.strip():
        raise BadRequest("'url' is required and must be a non-empty string")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise BadRequest("url contains control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise BadRequest(f"malformed url {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise BadRequest(f"url {url!r} has no scheme (expected e.g. https://...)")
    if scheme not in allowed_schemes:
        raise ForbiddenUrl(f"scheme {scheme!r} is not allowed (allowed: {', '.join(allowed_schemes)})")
    if scheme in ("http", "https") and not parts.hostname:
        raise BadRequest(f"url {url!r} has no host")
    return url


class JobAborted(Exception):
    """Raised inside a job's thread (by :meth:`Job.check`) once the job is aborted."""


@dataclass
class Job:
    url: str
    site: str
    timeout: float
    params: dict
    id: int = field(default_factory=lambda: next(_ids))
    created: float = field(default_factory=time.monotonic)
    aborted: str | None = None  # "timeout" or "client_gone" once aborted
    #: What the site wants to tell the client about the job (e.g. scrolls done), JSON-able.
    notes: dict = field(default_factory=dict)
    _abort_hooks: list = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def deadline(self) -> float:
        return self.created + self.timeout

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        """Site classes call this between steps: raises :class:`JobAborted` once the job
        passed its deadline or its client left, so no work continues for nobody."""
        if self.aborted is not None:
            raise JobAborted(self.aborted)

    def on_abort(self, hook) -> None:
        """Run ``hook(reason)`` when the job is aborted (at once if it already is)."""
        with self._lock:
            if self.aborted is None:
                self._abort_hooks.append(hook)
                return
            reason = self.aborted
        hook(reason)

    def clear_abort_hooks(self) -> None:
        with self._lock:
            self._abort_hooks.clear()

    def abort(self, reason: str) -> bool:
        """Mark the job aborted and run its hooks once; False if it already was."""
        with self._lock:
            if self.aborted is not None:
                return False
            self.aborted = reason
            hooks, self._abort_hooks = self._abort_hooks, []
        for hook in hooks:
            hook(reason)
        return True


def parse_fetch(args: dict, config, sites) -> Job:
    """Validate a fetch request's ``args`` into a Job, or raise BadRequest & co.
    ``sites`` maps site names to site objects; a site's ``timeout`` (if set) replaces
    the daemon's ``job_timeout`` as its jobs' default and maximum."""
    from browserd_client.errors import UnknownSite

    url = check_url(args.get("url"), config.allowed_schemes)
    site = args.get("site", "generic")
    if not isinstance(site, str) or not site:
        raise BadRequest("'site' must be a non-empty string")
    if site not in sites:
        raise UnknownSite(f"unknown site {site!r} (known: {', '.join(sorted(sites))})")
    limit = getattr(sites[site], "timeout", None) or config.job_timeout
    timeout = args.get("timeout")
    if timeout is None:
        timeout = limit
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout:
        raise BadRequest(f"'timeout' must be a positive number of seconds, not {timeout!r}")
    timeout = min(float(timeout), float(limit))
    params = args.get("params", {})
    if not isinstance(params, dict):
        raise BadRequest("'params' must be a JSON object")
    unknown = set(args) - {"url", "site", "timeout", "params"}
    if unknown:
        raise BadRequest(f"unknown fetch arguments: {', '.join(sorted(unknown))}")
    return Job(url=url, site=site, timeout=timeout, params=params)
