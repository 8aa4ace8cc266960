"""The Arbiter's seams without a daemon: the signal queue, systemd's watchdog feed, the
readiness pipe's one type on both sides."""

from __future__ import annotations

import os
import signal

import pytest

from browserd.daemon import systemd
from browserd.daemon.daemonize import Readiness
from browserd.daemon.signals import SignalQueue


@pytest.fixture
def restore_handlers():
    saved = {sig: signal.getsignal(sig) for sig in SignalQueue.SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_signals_are_queued_in_order_and_dispatched_by_the_loop(restore_handlers):
    queue = SignalQueue()
    assert queue.wait(0) == []  # before install: nothing, and no wait
    queue.install()
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGTERM)  # queued, not acted on: this process lives on
    assert queue.wait(5) == [signal.SIGHUP, signal.SIGTERM]
    assert queue.wait(0) == []


def test_watchdog_interval_is_read_when_armed_not_when_built(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    feed = systemd.WatchdogFeed(lambda: True)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert feed.every is None and feed.seconds_to_next() is None
    feed.arm()  # in the serving process (after the fork of ``start``)
    assert feed.every == 2.0


def test_watchdog_pings_only_while_healthy(monkeypatch):
    sent = []
    monkeypatch.setattr(systemd, "notify", lambda state: sent.append(state) or True)
    healthy = [False]
    feed = systemd.WatchdogFeed(lambda: healthy[0])
    feed.every = 10.0
    feed.tick()
    assert sent == [] and feed.seconds_to_next() <= 1.0  # looks again within a second
    healthy[0] = True
    feed._next = 0.0
    feed.tick()
    assert sent == ["WATCHDOG=1"] and feed.seconds_to_next() > 9.0


def test_readiness_is_one_type_on_both_sides_of_the_fork():
    read_fd, write_fd = os.pipe()
    daemon_side = Readiness(write_fd)
    daemon_side.ready(pid=7)
    assert daemon_side.in_daemon and daemon_side.fd is None  # reported once, then closed
    parent_side = Readiness(None, in_daemon=False, report={"ready": True, "pid": 7})
    assert not parent_side.in_daemon and parent_side.report["pid"] == 7
    assert os.read(read_fd, 100) == b'{"ready": true, "pid": 7}\n'
    os.close(read_fd)
    Readiness(None).failed("in the foreground: a no-op")
