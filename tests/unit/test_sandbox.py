"""When Chromium gets its sandbox, and the flag that follows from it."""

from __future__ import annotations

import errno
import os

import pytest

from browserd import sandbox
from browserd.browser import LaunchSpec, chrome_options


@pytest.fixture
def unprivileged(monkeypatch):
    """A non-root process on a kernel that allows everything; tests turn things off."""
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sandbox, "_read_sysctl", lambda path: None)
    monkeypatch.setattr(sandbox, "probe_namespaces", lambda flags=sandbox.CHROMIUM_NAMESPACES: 0)
    return monkeypatch


def test_sandbox_on_when_not_root_and_namespaces_allowed(unprivileged):
    assert sandbox.sandbox_available() == (True, "unprivileged user namespaces")


def test_sandbox_off_as_root(monkeypatch):
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    on, why = sandbox.sandbox_available()
    assert not on and "root" in why


@pytest.mark.parametrize("path,value,name", [
    ("/proc/sys/user/max_user_namespaces", 0, "user.max_user_namespaces = 0"),
    ("/proc/sys/kernel/unprivileged_userns_clone", 0, "kernel.unprivileged_userns_clone = 0"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", 1, "kernel.apparmor_restrict_unprivileged_userns = 1"),
])
def test_sandbox_off_when_a_sysctl_forbids_user_namespaces(unprivileged, path, value, name):
    unprivileged.setattr(sandbox, "_read_sysctl", lambda p: value if p == path else None)
    on, why = sandbox.sandbox_available()
    assert not on and why.startswith(name)


def test_sandbox_off_when_creating_the_namespaces_fails(unprivileged):
    # e.g. systemd's RestrictNamespaces= without pid: the sysctls allow it, unshare does not.
    unprivileged.setattr(sandbox, "probe_namespaces", lambda flags=sandbox.CHROMIUM_NAMESPACES: errno.EPERM)
    on, why = sandbox.sandbox_available()
    assert not on and why == f"cannot create user/pid/net namespaces: {os.strerror(errno.EPERM)}"


def test_probe_reports_the_childs_errno():
    assert sandbox.probe_namespaces(0) == 0               # unshare(0) always succeeds
    assert sandbox.probe_namespaces(0x7FFFFFFF) == errno.EINVAL


def test_no_sandbox_flag_only_without_the_sandbox():
    def args(sandboxed: bool) -> list:
        return chrome_options(LaunchSpec("chromium", "chromedriver", None, sandbox=sandboxed), None).arguments

    assert "--no-sandbox" in args(False) and "--no-sandbox" not in args(True)
    assert args(False).count("--headless=new") == args(True).count("--headless=new") == 1
