"""Start a program (chromedriver) in a private network namespace, and stay beside it as
the daemon's socket factory for that namespace.

Run by the daemon as ``python -I -S _netns_launcher.py CTL_FD PROGRAM [ARG...]``, in a new
session (so this process leads the browser's process group). Standard library only, and
nothing imported from browserd: it must start fast and run with ``-S``.

Steps, in order:

1. ``unshare(CLONE_NEWNET)`` as root; otherwise ``unshare(CLONE_NEWUSER | CLONE_NEWNET)``
   with the caller's uid and gid mapped to themselves (``user_namespaces(7)``), which an
   unprivileged user may do. The namespace has only a loopback interface: chromedriver's
   port and Chromium's DevTools port exist for no process outside it.
2. Bring ``lo`` up (``SIOCSIFFLAGS``; the capability is held until ``exec``).
3. Fork; the child ``exec``s the program (it keeps this process group).
4. Serve requests on ``CTL_FD``, a ``SOCK_SEQPACKET`` socket shared with the daemon:
   ``tcp4``/``tcp6`` answer a new unconnected TCP socket of the namespace, ``listen`` a
   TCP socket listening on 127.0.0.1 (port chosen by the kernel) in the namespace, each
   passed with ``SCM_RIGHTS``. A socket belongs to the namespace it was created in, so the
   daemon, outside, can connect to chromedriver and accept the browser's connections.
5. Exit when the program exits, or kill the whole group when the daemon's end of
   ``CTL_FD`` closes (the daemon is gone: its browsers must not outlive it). The program
   gets SIGKILL if the launcher itself dies (``PR_SET_PDEATHSIG``).

Exit status 70 with one line on stderr when a step before ``exec`` fails.
"""

import ctypes
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
PR_SET_PDEATHSIG = 1
EXIT_SETUP = 70


def _fail(step, err):
    sys.stderr.write(f"browserd netns launcher: {step} failed: {os.strerror(err)}\n")
    sys.stderr.flush()
    os._exit(EXIT_SETUP)


def _write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def enter_namespace():
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNET if uid == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        _fail("unshare", ctypes.get_errno())
    if uid != 0:
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        except OSError as exc:
            _fail("user namespace id map", exc.errno or errno.EPERM)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags_now = struct.unpack("16sH14x", fcntl.ioctl(probe, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags_now | IFF_UP))
    except OSError as exc:
        _fail("loopback up", exc.errno or errno.EPERM)
    finally:
        probe.close()


def make_socket(kind):
    if kind == b"tcp4":
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if kind == b"tcp6":
        return socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    if kind == b"listen":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        return sock
    raise ValueError(f"unknown request {kind[:16]!r}")


def serve(ctl, child):
    """Answer socket requests until the program exits or the daemon's end closes."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            return os.waitstatus_to_exitcode(status)
        readable, _, _ = select.select([ctl, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 512)
        if ctl not in readable:
            continue
        try:
            request = ctl.recv(64)
        except OSError:
            request = b""
        if not request:  # the daemon is gone
            os.killpg(0, signal.SIGKILL)
            return 1
        try:
            sock = make_socket(request)
        except (OSError, ValueError) as exc:
            ctl.send(f"err {exc}".encode()[:512])
            continue
        try:
            socket.send_fds(ctl, [b"ok"], [sock.fileno()])
        finally:
            sock.close()


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: _netns_launcher.py CTL_FD PROGRAM [ARG...]\n")
        return 2
    ctl = socket.socket(fileno=int(argv[1]))
    ctl.set_inheritable(False)
    enter_namespace()
    child = os.fork()
    if child == 0:
        # The launcher anchors the namespace and is the daemon's only way into it: if it
        # dies, the program must not live on unreachable.
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 \
                or os.getppid() == 1:
            os._exit(127)
        try:
            os.execv(argv[2], argv[2:])
        except OSError as exc:
            sys.stderr.write(f"browserd netns launcher: exec {argv[2]} failed: {exc.strerror}\n")
        os._exit(127)
    code = serve(ctl, child)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
