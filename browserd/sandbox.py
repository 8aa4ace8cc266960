"""Can Chromium run with its own sandbox here? Decided once at start, before any thread.

Chromium sandboxes its renderers in new user, PID and network namespaces (plus seccomp-bpf);
as root it refuses to, and without unprivileged user namespaces Debian's Chromium has no
other sandbox (it ships no setuid ``chrome-sandbox``) and will not start unless given
``--no-sandbox``. So the sandbox is used when the daemon is not root and the kernel lets
this process create those namespaces; the answer comes with a one-line reason for the log
and ``status``.

The decisive check is a real one: a forked child calls ``unshare(2)`` with the namespaces
Chromium asks for. That covers every way of refusing them (the sysctls below, a seccomp
filter such as systemd's ``RestrictNamespaces=``, an LSM). AppArmor's
``apparmor_restrict_unprivileged_userns`` (Ubuntu 23.10+) is read first because there
``unshare`` succeeds but the namespace gets no capabilities, which Chromium then fails on.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
#: What Chromium's namespace sandbox creates for its zygote (sandbox/linux/services/namespace_sandbox.cc).
CHROMIUM_NAMESPACES = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET

#: (sysctl file, the value that turns unprivileged user namespaces off)
_SYSCTLS = (
    ("/proc/sys/user/max_user_namespaces", 0),
    ("/proc/sys/kernel/unprivileged_userns_clone", 0),             # Debian kernels before 5.10
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", 1),  # Ubuntu 23.10+
)


def _read_sysctl(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def probe_namespaces(flags: int = CHROMIUM_NAMESPACES) -> int:
    """0 if a child process can ``unshare(flags)``, else the errno it got. The child does
    nothing else before ``_exit``, so forking is safe even with threads running."""
    libc = ctypes.CDLL(None, use_errno=True)
    unshare = libc.unshare
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            if unshare(flags) != 0:
                code = ctypes.get_errno() or 1
        finally:
            os._exit(code & 0xFF)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 255


def sandbox_available() -> tuple[bool, str]:
    """``(True, why)`` when Chromium can run sandboxed in this process, else ``(False, why)``."""
    if os.geteuid() == 0:
        return False, "running as root, where Chromium refuses its sandbox"
    for path, off in _SYSCTLS:
        if _read_sysctl(path) == off:
            name = path[len("/proc/sys/"):].replace("/", ".")
            return False, f"{name} = {off}: no unprivileged user namespaces"
    error = probe_namespaces()
    if error:
        return False, f"cannot create user/pid/net namespaces: {os.strerror(error)}"
    return True, "unprivileged user namespaces"
