"""The egress policy, on real Chromium: every way a page can reach a refused address.

The daemons here open 127.0.0.1/32 (the attack pages) and nothing else; the victim, a
server that records every request it gets, listens on 127.0.0.2 (loopback too, but not
allowed). Whatever the page does, the victim must receive nothing; top-level attempts
answer ``forbidden_url`` naming the address, the rule and the setting.
"""

from __future__ import annotations

import pytest

from browserd_client import ForbiddenUrl, LoadFailed
from tests.support.egress_pages import AttackPages, RecordingServer


@pytest.fixture(scope="module")
def victim():
    with RecordingServer("127.0.0.2") as server:
        yield server


@pytest.fixture(scope="module")
def attack():
    with AttackPages("127.0.0.1") as server:
        yield server


@pytest.fixture
def quiet_victim(victim):
    """The victim server with its record checked empty at the end of the test."""
    before = len(victim.requests)
    yield victim
    assert victim.requests[before:] == [], f"the refused address received {victim.requests[before:]}"


def _spellings(victim) -> list[str]:
    port = victim.port
    return [victim.url("/direct"), f"http://2130706434:{port}/decimal", f"http://0x7f000002:{port}/hex",
            f"http://0177.0.0.2:{port}/octal", f"http://[::ffff:127.0.0.2]:{port}/mapped",
            f"http://user:pw@127.0.0.2:{port}/userinfo", f"http://127.2:{port}/short"]


def test_direct_fetch_of_a_refused_address_in_any_spelling_is_forbidden(shared_daemon, quiet_victim):
    with shared_daemon.client() as client:
        for url in _spellings(quiet_victim):
            with pytest.raises(ForbiddenUrl) as info:
                client.fetch(url, timeout=20)
            print(url, "->", info.value)
            assert "127.0.0.2" in str(info.value) and "loopback" in str(info.value)
            assert "allow_networks" in str(info.value)


@pytest.mark.parametrize("how", ["/302", "/meta", "/js"])
def test_redirects_to_a_refused_address_are_forbidden(shared_daemon, attack, quiet_victim, how):
    with shared_daemon.client() as client:
        with pytest.raises((ForbiddenUrl, LoadFailed)) as info:
            # meta refresh and script redirects reach Chromium's error page after the first
            # load: wait for that page (its #main-frame-error) to be there
            client.fetch(attack.url(f"{how}?to={quiet_victim.url('/redirected')}"),
                         wait_for="#main-frame-error" if how != "/302" else None, timeout=20)
        print(how, "->", info.value.code, info.value)
        assert info.value.code == "forbidden_url", info.value


@pytest.mark.parametrize("how", ["/img", "/iframe", "/fetch", "/popup", "/worker"])
def test_subresources_frames_popups_and_workers_never_reach_a_refused_address(shared_daemon, attack,
                                                                              quiet_victim, how):
    with shared_daemon.client() as client:
        page = client.fetch(attack.url(f"{how}?to={quiet_victim.url('/sub')}"), wait_for="#done", timeout=20)
    print(how, "->", page.notes)
    if how != "/worker":  # a worker refused as a URL never gets as far as a connection
        assert any("127.0.0.2" in entry for entry in page.notes.get("egress_refused", [])), page.notes


def test_the_daemons_own_port_is_refused_even_with_loopback_open(start_daemon):
    daemon = start_daemon(1, "--allow-networks", "127.0.0.0/8")
    with daemon.client() as client:
        with pytest.raises(ForbiddenUrl, match="control port"):
            client.fetch(f"http://127.0.0.1:{daemon.address['port']}/", timeout=20)


def test_allowed_network_is_reachable(shared_daemon, attack):
    with shared_daemon.client() as client:
        page = client.fetch(attack.url("/img?to=/nothing"), wait_for="#done", timeout=20)
    assert page.url.startswith(attack.url("/img"))
