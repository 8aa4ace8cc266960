"""What the daemon launches, derived from the configuration: the chromedriver and
Chromium executables, the sandbox decision, and the :class:`LaunchSpec` of every browser.

Missing programs raise :class:`DependencyMissing` (exit 69), with one line that says what
to install or set.
"""

from __future__ import annotations

import errno
import os
import pwd
import resource
import shutil

from ..browser import LaunchSpec
from ..sandbox import sandbox_available
from .errors import DependencyMissing, ExitCode


def start_failure(exc: BaseException) -> ExitCode:
    """The exit status of a browser that failed to start, from its exception chain: an
    executable that cannot be run at all (``ENOENT``/``EACCES``/``ENOEXEC`` from exec) is a
    missing dependency (69); anything else a failed start (1)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOEXEC):
            return ExitCode.UNAVAILABLE
        exc = exc.__cause__ or exc.__context__
    return ExitCode.FAILURE


def driver_path(config) -> str | None:
    """The chromedriver to launch, from the configured driver source."""
    if config.driver_source == "grid":
        return None
    if config.driver_source == "webdriver-manager":
        try:
            from webdriver_manager.chrome import ChromeDriverManager
            from webdriver_manager.core.os_manager import ChromeType
        except ImportError:
            raise DependencyMissing("driver_source = webdriver-manager needs the extra: "
                                    "pip install 'browserd[wdm]'") from None
        try:
            return ChromeDriverManager(chrome_type=ChromeType.CHROMIUM).install()
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DependencyMissing(f"webdriver-manager could not provide chromedriver "
                                    f"(it downloads from the internet): {first}") from None
    try:
        return resolve_binary(config.chromedriver, "chromedriver")
    except FileNotFoundError as exc:
        raise DependencyMissing(str(exc)) from None


GRID_SANDBOX = (False, "driver_source = grid: the Grid nodes run the browsers, given --no-sandbox as before")


def chromium_sandbox(config) -> tuple[bool, str]:
    """Whether the browsers run with Chromium's sandbox, and why (see sandbox.py)."""
    return GRID_SANDBOX if config.driver_source == "grid" else sandbox_available()


def daemon_user() -> str:
    """``"name (uid N)"`` of the effective user (``"uid N"`` without a passwd entry)."""
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def launch_spec(config, sandbox: bool | None = None) -> LaunchSpec:
    """The :class:`LaunchSpec` of every browser of ``config`` (``sandbox`` None: decided by
    :func:`chromium_sandbox`). Raises DependencyMissing (69) for a missing program."""
    chromedriver = driver_path(config)
    if sandbox is None:
        sandbox = chromium_sandbox(config)[0]
    if config.driver_source == "grid":
        chromium = "" if config.chromium == "chromium" else config.chromium
    else:
        try:
            chromium = resolve_binary(config.chromium, "chromium")
        except FileNotFoundError as exc:
            raise DependencyMissing(str(exc)) from None
    return LaunchSpec(
        chromium=chromium, chromedriver=chromedriver,
        grid_url=config.grid_url if config.driver_source == "grid" else None,
        extra_args=tuple(config.chromium_args),
        command_timeout=config.job_timeout + 30,
        start_timeout=config.start_timeout,
        sandbox=sandbox,
    )


def resolve_binary(name: str, what: str) -> str:
    """Absolute path of an executable given by name or path, or a one-line error."""
    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    raise FileNotFoundError(
        f"{what} not found: {name!r} is not an executable on PATH "
        f"(on Debian: apt-get install chromium chromium-driver; or set {what})"
    )


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (at most 65536): browsers and connections
    need descriptors, and the default soft 1024 is the first wall hit under load."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)
