"""A fetch job: validated arguments, its deadline, and how it can be aborted."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from browserd_client.errors import BadRequest, ForbiddenUrl

from .joboptions.validate import OPTIONS as _REQUEST_OPTIONS, JobOptions, validate as _validate_options
from .proxies import Upstream, parse_upstream

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
    """One fetch, as :func:`parse_fetch` validated it: ``url``, ``site`` (a registered site
    class's name), ``timeout`` (seconds, the job's whole time from its arrival), the site's
    ``params``, the job options (``options``, ``upstream``). Shared by the connection's
    thread, the job's thread and the watchdog: ``aborted`` is set once, under ``_lock``."""

    url: str
    site: str
    timeout: float
    params: dict
    id: int = field(default_factory=lambda: next(_ids))
    created: float = field(default_factory=time.monotonic)
    aborted: str | None = None  # "timeout", "client_gone" or "too_large" once aborted
    #: What the site wants to tell the client about the job (e.g. scrolls done), JSON-able.
    notes: dict = field(default_factory=dict)
    #: The upstream proxy all of this job's traffic goes through (None: direct).
    upstream: Upstream | None = None
    #: The ticket of an earlier ``busy`` reply: the job's place in the queue (None: a newcomer).
    ticket: str | None = None
    #: The job options beyond the proxy (:mod:`browserd.joboptions`); None: none asked for.
    options: JobOptions | None = None
    #: The options' per-job state on the browser (browserd.joboptions), while the job runs.
    option_state: object = field(default=None, repr=False)
    _abort_hooks: list = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def deadline(self) -> float:
        """When the job's time is up (``time.monotonic()`` seconds)."""
        return self.created + self.timeout

    def remaining(self) -> float:
        """Seconds until the deadline (negative once past it)."""
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
        """Forget the abort hooks (the job's steps that registered them are over)."""
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


#: Job options: applied by the daemon for every site class (unlike a site's ``params``).
JOB_OPTIONS = ("proxy", "proxy_pool") + _REQUEST_OPTIONS


def _upstream(options: dict, site, proxy_pools: dict) -> Upstream | None:
    """The job's upstream proxy: ``options.proxy`` (a URL), else ``options.proxy_pool``,
    else the site's ``proxy_pool`` policy, else None (direct)."""
    if options.get("proxy") is not None:
        try:
            return parse_upstream(options["proxy"], "option 'proxy'")
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    name, where = options.get("proxy_pool"), "option 'proxy_pool'"
    if name is None:
        name, where = getattr(site, "proxy_pool", None), f"site {getattr(site, 'name', '?')!r} proxy_pool"
    if name is None:
        return None
    if not isinstance(name, str) or name not in proxy_pools:
        known = ", ".join(sorted(proxy_pools)) or "none configured"
        raise BadRequest(f"{where}: no proxy pool {name!r} (known: {known})")
    return proxy_pools[name].pick()


def parse_fetch(args: dict, config, sites, proxy_pools: dict | None = None) -> Job:
    """Validate a fetch request's ``args`` into a Job, or raise BadRequest & co.
    ``sites`` maps site names to site objects; a site's ``timeout`` (if set) replaces
    the daemon's ``job_timeout`` as its jobs' default and maximum. ``args["options"]``
    holds job options (:data:`JOB_OPTIONS`); ``proxy_pools`` maps pool names to
    :class:`~browserd.proxies.ProxyPool`."""
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
    options = args.get("options", {})
    if not isinstance(options, dict):
        raise BadRequest("'options' must be a JSON object")
    unknown = set(options) - set(JOB_OPTIONS)
    if unknown:
        raise BadRequest(f"unknown job options: {', '.join(sorted(unknown))} (known: {', '.join(JOB_OPTIONS)})")
    unknown = set(args) - {"url", "site", "timeout", "params", "options", "ticket"}
    if unknown:
        raise BadRequest(f"unknown fetch arguments: {', '.join(sorted(unknown))}")
    ticket = args.get("ticket")
    if ticket is not None and not (isinstance(ticket, str) and 0 < len(ticket) <= 64):
        raise BadRequest("'ticket' must be the string a 'busy' reply gave")
    job_options = _validate_options(options, url)
    upstream = _upstream(options, sites[site], proxy_pools or {})
    return Job(url=url, site=site, timeout=timeout, params=params, upstream=upstream, ticket=ticket,
               options=job_options)
