"""The destination policy's address classifier and its allow list (pure logic)."""

from __future__ import annotations

import pytest

from browserd.netpolicy import DestinationPolicy, classify, parse_allow


@pytest.mark.parametrize("ip, rule", [
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "cgnat"), ("100.127.255.255", "cgnat"),
    ("fd00:ec2::254", "unique-local"), ("fc00::1", "unique-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("192.0.2.1", "reserved"),
    ("198.18.0.1", "reserved"), ("2001:db8::1", "reserved"),
    # IPv6 spellings of refused IPv4 addresses are judged as those addresses
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback"), ("64:ff9b::a00:1", "private"),
])
def test_refused_ranges_are_named(ip, rule):
    assert classify(ip) == rule


@pytest.mark.parametrize("ip", ["93.184.215.14", "1.1.1.1", "172.32.0.1", "100.128.0.1", "172.15.255.255",
                                "2606:4700:4700::1111", "::ffff:93.184.215.14"])
def test_public_unicast_is_allowed(ip):
    assert classify(ip) is None
    assert DestinationPolicy().check(ip, 443) is None


def test_edges_of_allowed_cidrs():
    policy = DestinationPolicy(allow_networks=("127.0.0.1/32", "10.1.0.0/16"))
    assert policy.check("127.0.0.1", 80) is None
    assert "127.0.0.2" in policy.check("127.0.0.2", 80)
    assert policy.check("10.1.255.255", 80) is None and policy.check("10.1.0.0", 80) is None
    assert policy.check("10.2.0.0", 80) is not None and policy.check("10.0.255.255", 80) is not None
    assert policy.check("::ffff:127.0.0.1", 80) is None  # the mapped spelling of an allowed address


def test_host_names_open_their_own_addresses_only():
    policy = DestinationPolicy(allow_networks=("intranet.example", "*.corp.example"))
    assert policy.check("10.0.0.5", 80, host="intranet.example") is None
    assert policy.check("10.0.0.5", 80, host="INTRANET.example.") is None
    assert policy.check("10.0.0.5", 80, host="db.corp.example") is None
    assert policy.check("10.0.0.5", 80, host="evil.example") is not None
    assert policy.check("10.0.0.5", 80, host="corp.example.evil") is not None


def test_control_ports_are_refused_whatever_is_allowed():
    policy = DestinationPolicy(allow_networks=("0.0.0.0/0", "::/0"), protected_ports=frozenset({4000}))
    for ip in ("127.0.0.1", "127.0.0.2", "0.0.0.0", "::1", "::ffff:127.0.0.1"):
        assert "control port" in policy.check(ip, 4000)
    assert policy.check("127.0.0.1", 4001) is None


def test_refusal_names_address_rule_and_setting():
    reason = DestinationPolicy().check("169.254.169.254", 80, host="metadata.internal")
    assert "metadata.internal (169.254.169.254)" in reason and "link-local" in reason
    assert "allow_networks" in reason


@pytest.mark.parametrize("bad", ["not a host!", "10.0.0.0/33", "a..b", "-"])
def test_bad_allow_entries_are_errors(bad):
    with pytest.raises(ValueError):
        parse_allow([bad])
