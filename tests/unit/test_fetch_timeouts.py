"""Which timeout a fetch sends and how long the client waits for its reply (no daemon:
the clients' calls are recorded)."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from browserd.cli import fetch as fetch_cmd
from browserd import config as cfg
from browserd_client import SITE_TIMEOUT, AsyncClient, Client

SITES = [{"name": "generic", "timeout": None}, {"name": "slow", "timeout": 120}, {"name": "quick", "timeout": 5}]


class Recording:
    """A client whose calls are recorded instead of sent."""

    def _reply(self, op, args, reply_timeout):
        self.calls.append((op, args, reply_timeout))
        return SITES if op == "sites" else {"source": "", "url": args["url"]}


class RecordingClient(Recording, Client):
    def _call(self, op, args, reply_timeout=None):
        return self._reply(op, args, reply_timeout)


class RecordingAsyncClient(Recording, AsyncClient):
    async def _call(self, op, args, reply_timeout=None):
        return self._reply(op, args, reply_timeout)


def recording(kind, **kwargs):
    client = kind(address="127.0.0.1:1", authkey=b"k", **kwargs)
    client.calls = []
    return client


@pytest.mark.parametrize("kind", [RecordingClient, RecordingAsyncClient])
def test_site_timeout_sends_none_and_waits_for_the_clients_own_timeout(kind):
    client = recording(kind, timeout=120)

    def fetch(**kwargs):
        result = client.fetch("http://x/", site="slow", **kwargs)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
        return client.calls.pop()

    _, args, wait = fetch(timeout=SITE_TIMEOUT)
    assert "timeout" not in args and wait == 130  # 120 + the 10 s grace
    _, args, wait = fetch()
    assert args["timeout"] == 120 and wait == 130
    _, args, wait = fetch(timeout=3)
    assert args["timeout"] == 3 and wait == 13


def cli_timeouts(site: str, timeout=None):
    args = argparse.Namespace(site=site, timeout=timeout)
    config = cfg.load(env={}, flags={})  # job_timeout 60
    return fetch_cmd.fetch_timeouts(recording(RecordingClient), args, config)


def test_cli_without_timeout_sends_none_and_waits_as_long_as_the_site_may_take():
    assert cli_timeouts("slow") == (SITE_TIMEOUT, 120.0)   # longer than job_timeout
    assert cli_timeouts("quick") == (SITE_TIMEOUT, 5.0)
    assert cli_timeouts("generic") == (SITE_TIMEOUT, 60.0)  # no timeout of its own
    assert cli_timeouts("unknown") == (SITE_TIMEOUT, 60.0)  # the daemon answers unknown_site


def test_cli_with_timeout_sends_it_and_waits_for_it():
    assert cli_timeouts("slow", timeout=7.5) == (7.5, 7.5)
