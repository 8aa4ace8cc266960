"""Where a browser may connect: the destination policy of the egress proxy (no SSRF).

A headless renderer loads pages other people wrote; without a policy any of them (through
a redirect, an iframe, an image, a worker) reaches the daemon host's loopback services,
its private networks and the cloud metadata endpoint, and the job's client gets the
answer back: server-side request forgery. The policy is decided on the **resolved**
address, at connect time, by the egress proxy (:mod:`browserd.egress`), so no spelling of
an address (decimal, octal, hex, IPv4-mapped IPv6, ``user@host``) and no DNS answer that
changes between a check and the connect gets past it.

Default: public unicast addresses only. Refused, each with the name of its rule:

==================  ==============================================================
rule                ranges (IANA special-purpose registries, RFC 6890 and updates)
==================  ==============================================================
``loopback``        127.0.0.0/8, ::1
``private``         10/8, 172.16/12, 192.168/16 (RFC 1918)
``link-local``      169.254/16 (incl. the metadata address 169.254.169.254), fe80::/10
``cgnat``           100.64/10 (RFC 6598)
``unique-local``    fc00::/7 (RFC 4193; incl. AWS's fd00:ec2::254)
``multicast``       224/4, ff00::/8
``unspecified``     0.0.0.0/8, ::
``reserved``        anything else not globally routable (240/4, 192.0.0/24,
                    198.18/15, documentation ranges, 64:ff9b:1::/48, ...)
==================  ==============================================================

IPv4-mapped (``::ffff:a.b.c.d``) and 6to4/NAT64 embeddings of a refused IPv4 address are
judged as that IPv4 address. ``allow_networks`` (CIDRs and host names) opens ranges on
purpose; the daemon's own control ports stay refused whatever is allowed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

_RULES_V4 = (
    ("loopback", "127.0.0.0/8"),
    ("private", "10.0.0.0/8"), ("private", "172.16.0.0/12"), ("private", "192.168.0.0/16"),
    ("link-local", "169.254.0.0/16"),
    ("cgnat", "100.64.0.0/10"),
    ("multicast", "224.0.0.0/4"),
    ("unspecified", "0.0.0.0/8"),
)
_RULES_V6 = (
    ("loopback", "::1/128"),
    ("link-local", "fe80::/10"),
    ("unique-local", "fc00::/7"),
    ("multicast", "ff00::/8"),
    ("unspecified", "::/128"),
)
_NETS = tuple((rule, ipaddress.ip_network(net)) for rule, net in _RULES_V4 + _RULES_V6)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
SETTING = "allow_networks"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if any(addr in net for net in _NAT64):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def classify(ip: str | ipaddress._BaseAddress) -> str | None:
    """The rule that refuses ``ip`` by default, or None for a public unicast address.

    >>> classify("169.254.169.254"), classify("::ffff:127.0.0.1"), classify("93.184.215.14")
    ('link-local', 'loopback', None)
    """
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address):
        inner = embedded_ipv4(addr)
        if inner is not None:
            return classify(inner)
        if addr.scope_id:
            addr = ipaddress.IPv6Address(str(addr).split("%", 1)[0])
    for rule, net in _NETS:
        if addr.version == net.version and addr in net:
            return rule
    if not addr.is_global:
        return "reserved"
    return None


def parse_allow(entries) -> tuple[tuple, frozenset]:
    """``allow_networks`` entries → (networks, host names). Raises ValueError naming a bad
    entry. A CIDR or address opens that range; a host name opens that name whatever it
    resolves to (``*.example.org`` opens its subdomains)."""
    nets, names = [], set()
    for entry in entries:
        text = str(entry).strip()
        if not text:
            continue
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
            continue
        except ValueError:
            pass
        name = text.lower().rstrip(".")
        if not _HOST_NAME.fullmatch(name):
            raise ValueError(f"{text!r} is neither a CIDR, an address nor a host name")
        names.add(name)
    return tuple(nets), frozenset(names)


@dataclass
class DestinationPolicy:
    """Which resolved destinations a browser may connect to.

    ``allow_networks``: CIDRs and host names opened on purpose (``allow_networks``
    setting); ``protected_ports``: TCP ports of browserd itself (its listener, its
    metrics), refused on every loopback and unspecified address whatever is allowed;
    ``exceptions``: exact ``(ip, port)`` pairs always allowed (the daemon's own demo and
    canary page). Thread-safe after construction (read-only).
    """

    allow_networks: tuple = ()
    protected_ports: frozenset = frozenset()
    exceptions: frozenset = frozenset()
    _nets: tuple = field(init=False, repr=False)
    _names: frozenset = field(init=False, repr=False)

    def __post_init__(self):
        self._nets, self._names = parse_allow(self.allow_networks)

    def name_allowed(self, host: str) -> bool:
        """Whether ``host`` (a name, case and a trailing dot ignored) is allowed by name
        (one of ``allow_networks``' names, or a subdomain of a ``*.suffix`` entry)."""
        host = host.lower().rstrip(".")
        return host in self._names or any(
            n.startswith("*.") and host.endswith(n[1:]) for n in self._names)

    def check(self, ip: str, port: int, host: str | None = None) -> str | None:
        """None when ``ip:port`` (resolved from ``host``) may be connected to, else a
        one-line reason naming the address, the rule and the setting that opens it."""
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
        plain = embedded_ipv4(addr) if isinstance(addr, ipaddress.IPv6Address) else None
        plain = plain or addr
        if (str(plain), port) in self.exceptions:
            return None
        if port in self.protected_ports and (plain.is_loopback or plain.is_unspecified):
            return f"{ip} port {port} is a control port of browserd (always refused)"
        rule = classify(plain)
        if rule is None:
            return None
        if host is not None and self.name_allowed(host):
            return None
        if any(plain.version == net.version and plain in net for net in self._nets):
            return None
        shown = f"{host} ({ip})" if host and host != ip else ip
        return (f"{shown} is refused by the egress policy ({rule} address); "
                f"open it with the {SETTING} setting (e.g. {SETTING} = [\"{plain}/"
                f"{32 if plain.version == 4 else 128}\"])")
