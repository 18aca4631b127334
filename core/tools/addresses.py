"""The address policy of ``fetch_url``: which hosts and IP addresses the bot may connect to.

Only public internet addresses are fetched. Private, loopback, link-local, multicast, reserved, unspecified
and shared (CGNAT, 100.64.0.0/10) addresses are refused, also when they hide inside an IPv6 form (IPv4-mapped
``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``), and so are the cloud metadata endpoints.
An operator may exempt hosts or networks with an allow list; entries are

- a host name, ``intranet.local``, or every name below a domain, ``*.corp.example``;
- an IP address or network, ``127.0.0.1``, ``10.2.0.0/16``, ``fd00::/8``;
- either of those with a port, ``127.0.0.1:8080``, ``[::1]:8080``, ``intranet.local:8443`` (the exemption then
  holds for that port only).

The metadata addresses are exempted only by an entry naming exactly that address (or its host name), never
by a wider network such as ``169.254.0.0/16``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean …
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("168.63.129.16"),  # Azure WireServer (a public address)
    }
)
METADATA_HOSTS: frozenset[str] = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


class AddressPolicyError(ValueError):
    """An allow-list entry that cannot be understood."""


def normalize_host(host: str) -> str:
    """Lower case, without the trailing dot of a fully qualified name and without IPv6 brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def parse_ip(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (dotted quad or IPv6, optionally with a zone), else None."""
    try:
        return ipaddress.ip_address(normalize_host(host))
    except ValueError:
        return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form carries (IPv4-mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _plain_problem(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a non-public address"
    return None


def address_problem(address: IPAddress) -> str | None:
    """Why connecting to ``address`` is refused (e.g. "a loopback address"), or None for a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    inner = embedded_ipv4(address)
    if inner is not None:
        if inner in METADATA_ADDRESSES:
            return f"a cloud metadata address ({inner}) in IPv6 form"
        problem = _plain_problem(inner)
        if problem is not None:
            return f"{problem} ({inner}) in IPv6 form"
        return None  # the IPv4 address is what is reached, and it is public
    return _plain_problem(address)


@dataclass(frozen=True, slots=True)
class _HostEntry:
    name: str  # normalized; "*.example.com" matches every name below example.com
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name


@dataclass(frozen=True, slots=True)
class _NetworkEntry:
    network: IPNetwork
    port: int | None

    def matches(self, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if address in METADATA_ADDRESSES and self.network.num_addresses != 1:
            return False
        if address.version == self.network.version and address in self.network:
            return True
        inner = embedded_ipv4(address)
        return inner is not None and self.network.version == 4 and self.matches(inner, port)


def _parse_port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise AddressPolicyError(f"bad port in allow-list entry {entry!r}")
    return int(text)


def _parse_entry(entry: str) -> _HostEntry | _NetworkEntry:
    text = entry.strip()
    port: int | None = None
    if text.startswith("["):  # [v6] or [v6]:port
        close = text.find("]")
        if close < 0:
            raise AddressPolicyError(f"unclosed '[' in allow-list entry {entry!r}")
        rest = text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise AddressPolicyError(f"cannot read allow-list entry {entry!r}")
            port = _parse_port(rest[1:], entry)
        text = text[1:close]
    elif text.count(":") == 1:  # host:port or v4:port
        text, port_text = text.split(":")
        port = _parse_port(port_text, entry)
    try:
        return _NetworkEntry(ipaddress.ip_network(text, strict=False), port)
    except ValueError:
        pass
    name = normalize_host(text)
    wildcard = name.startswith("*.")
    label = name[2:] if wildcard else name
    try:
        label = label.encode("idna").decode("ascii") if not label.isascii() else label
    except UnicodeError:
        label = ""
    if not label or not all(_LABEL.fullmatch(part) for part in label.split(".")):
        raise AddressPolicyError(
            f"allow-list entry {entry!r} is neither a host name, an IP address nor a network"
        )
    return _HostEntry(f"*.{label}" if wildcard else label, port)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Decides whether a host and the addresses it resolved to may be connected to."""

    hosts: tuple[_HostEntry, ...] = ()
    networks: tuple[_NetworkEntry, ...] = ()

    @classmethod
    def from_allow(cls, allow: Iterable[str]) -> AddressPolicy:
        """Build from allow-list entries; raises ``AddressPolicyError`` (a ValueError) on a bad entry."""
        hosts: list[_HostEntry] = []
        networks: list[_NetworkEntry] = []
        for raw in allow:
            if not raw.strip():
                continue
            entry = _parse_entry(raw)
            if isinstance(entry, _HostEntry):
                hosts.append(entry)
            else:
                networks.append(entry)
        return cls(tuple(hosts), tuple(networks))

    def host_allowed(self, host: str, port: int) -> bool:
        """Is this host name exempt from the address checks (it is on the allow list by name)?"""
        host = normalize_host(host)
        return any(entry.matches(host, port) for entry in self.hosts)

    def host_problem(self, host: str, port: int) -> str | None:
        """A refusal decided by the name alone (metadata host names), before any DNS lookup."""
        host = normalize_host(host)
        if host in METADATA_HOSTS and not self.host_allowed(host, port):
            return f"{host} is a cloud metadata service"
        return None

    def address_allowed(self, address: IPAddress, port: int) -> bool:
        return any(entry.matches(address, port) for entry in self.networks)

    def check(self, host: str, port: int, addresses: Iterable[IPAddress]) -> str | None:
        """Why connecting to ``host``:``port`` at ``addresses`` is refused, or None when all are fine.

        ``host`` is the name from the URL (or the IP literal); a host on the allow list by name is fine
        whatever it resolves to; otherwise each address must be public or on the allow list itself."""
        problem = self.host_problem(host, port)
        if problem is not None:
            return problem
        if self.host_allowed(host, port):
            return None
        name = normalize_host(host)
        for address in addresses:
            if self.address_allowed(address, port):
                continue
            reason = address_problem(address)
            if reason is None:
                continue
            if parse_ip(name) is not None:
                return f"{address} is {reason}"
            return f"{name} resolves to {address}, {reason}"
        return None
