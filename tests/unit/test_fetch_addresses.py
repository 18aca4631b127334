"""The fetch_url address policy: what is public, IPv6 disguises of internal addresses, the allow list."""

from __future__ import annotations

import ipaddress

import pytest

from core.tools.addresses import (
    AddressPolicy,
    AddressPolicyError,
    address_problem,
    embedded_ipv4,
    normalize_host,
    parse_ip,
)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("100.100.100.200", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", ""),  # "this network"
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", ""),  # reserved (the exact label depends on the Python version)
        ("255.255.255.255", ""),
        ("192.0.2.10", ""),  # documentation
        ("198.18.0.1", ""),  # benchmarking
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fd00:ec2::254", "metadata"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", ""),  # documentation
        ("::ffff:127.0.0.1", "loopback address (127.0.0.1) in IPv6 form"),
        ("::ffff:10.0.0.1", "private address (10.0.0.1) in IPv6 form"),
        ("::ffff:169.254.169.254", "metadata address (169.254.169.254) in IPv6 form"),
        ("2002:7f00:1::1", "loopback address (127.0.0.1) in IPv6 form"),  # 6to4
        ("2002:a9fe:a9fe::", "metadata address (169.254.169.254) in IPv6 form"),
        ("64:ff9b::7f00:1", "loopback address (127.0.0.1) in IPv6 form"),  # NAT64
        ("64:ff9b::a00:1", "private address (10.0.0.1) in IPv6 form"),
        ("64:ff9b:1::a00:1", ""),  # local-use NAT64 prefix
        ("::127.0.0.1", ""),  # deprecated IPv4-compatible form
    ],
)
def test_internal_addresses_are_refused(address: str, reason: str) -> None:
    problem = address_problem(ip(address))
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ip(address)) is None


def test_embedded_ipv4_forms() -> None:
    assert embedded_ipv4(ip("::ffff:1.2.3.4")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("2002:102:304::")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("64:ff9b::102:304")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("2606:4700::1111")) is None
    assert embedded_ipv4(ip("1.2.3.4")) is None


def test_host_normalization_and_literals() -> None:
    assert normalize_host("LocalHost.") == "localhost"
    assert normalize_host("[::1]") == "::1"
    assert parse_ip("[::1]") == ip("::1")
    assert parse_ip("127.0.0.1") == ip("127.0.0.1")
    assert parse_ip("127.1") is None  # legacy short form: left to DNS, whose answer is checked
    assert parse_ip("example.com") is None


def test_no_allow_list_refuses_with_a_readable_reason() -> None:
    policy = AddressPolicy.from_allow([])
    assert policy.check("localhost", 80, [ip("127.0.0.1")]) == (
        "localhost resolves to 127.0.0.1, a loopback address"
    )
    assert policy.check("10.1.2.3", 80, [ip("10.1.2.3")]) == "10.1.2.3 is a private address"
    assert policy.check("example.com", 443, [ip("93.184.216.34")]) is None


def test_any_internal_address_among_several_refuses() -> None:
    policy = AddressPolicy.from_allow([])
    problem = policy.check("mixed.example", 443, [ip("93.184.216.34"), ip("10.0.0.7")])
    assert problem == "mixed.example resolves to 10.0.0.7, a private address"


def test_networks_on_the_allow_list() -> None:
    policy = AddressPolicy.from_allow(["10.2.0.0/16", "fd00:1::/32", " ", "192.168.7.7"])
    assert policy.check("a.internal", 80, [ip("10.2.3.4")]) is None
    assert policy.check("a.internal", 80, [ip("10.3.0.1")]) is not None
    assert policy.check("a.internal", 80, [ip("fd00:1::5")]) is None
    assert policy.check("192.168.7.7", 8080, [ip("192.168.7.7")]) is None
    assert policy.check("192.168.7.8", 8080, [ip("192.168.7.8")]) is not None


def test_allowed_ipv4_also_covers_its_ipv4_mapped_form() -> None:
    policy = AddressPolicy.from_allow(["127.0.0.1"])
    assert policy.check("::ffff:127.0.0.1", 80, [ip("::ffff:127.0.0.1")]) is None
    assert policy.check("::1", 80, [ip("::1")]) is not None


def test_port_specific_entries() -> None:
    policy = AddressPolicy.from_allow(["127.0.0.1:8080", "[::1]:9000", "intranet.local:8443"])
    assert policy.check("127.0.0.1", 8080, [ip("127.0.0.1")]) is None
    assert policy.check("127.0.0.1", 8081, [ip("127.0.0.1")]) is not None
    assert policy.check("::1", 9000, [ip("::1")]) is None
    assert policy.check("::1", 9001, [ip("::1")]) is not None
    assert policy.check("intranet.local", 8443, [ip("10.9.9.9")]) is None
    assert policy.check("intranet.local", 443, [ip("10.9.9.9")]) is not None


def test_host_names_on_the_allow_list() -> None:
    policy = AddressPolicy.from_allow(["Intranet.Local.", "*.corp.example"])
    assert policy.host_allowed("intranet.local", 80)
    assert policy.check("INTRANET.local.", 80, [ip("10.0.0.5"), ip("::1")]) is None
    assert policy.check("wiki.corp.example", 443, [ip("10.0.0.6")]) is None
    assert policy.check("a.b.corp.example", 443, [ip("10.0.0.6")]) is None
    assert policy.check("corp.example", 443, [ip("10.0.0.6")]) is not None
    assert policy.check("evilcorp.example", 443, [ip("10.0.0.6")]) is not None
    assert policy.check("other.local", 80, [ip("10.0.0.5")]) is not None


def test_metadata_needs_an_exact_entry() -> None:
    wide = AddressPolicy.from_allow(["169.254.0.0/16", "0.0.0.0/0"])
    assert wide.check("169.254.1.1", 80, [ip("169.254.1.1")]) is None
    assert wide.check("169.254.169.254", 80, [ip("169.254.169.254")]) == (
        "169.254.169.254 is a cloud metadata address"
    )
    exact = AddressPolicy.from_allow(["169.254.169.254"])
    assert exact.check("169.254.169.254", 80, [ip("169.254.169.254")]) is None


def test_metadata_host_names_are_refused_by_name() -> None:
    policy = AddressPolicy.from_allow([])
    assert policy.host_problem("metadata.google.internal", 80) == (
        "metadata.google.internal is a cloud metadata service"
    )
    assert policy.check("Metadata.Google.Internal.", 80, [ip("93.184.216.34")]) is not None
    assert policy.host_problem("example.com", 80) is None
    named = AddressPolicy.from_allow(["metadata.google.internal"])
    assert named.host_problem("metadata.google.internal", 80) is None


def test_unicode_host_entries_are_stored_in_idna_form() -> None:
    policy = AddressPolicy.from_allow(["bücher.example"])
    assert policy.host_allowed("xn--bcher-kva.example", 80)


@pytest.mark.parametrize(
    "entry", ["not a host!", "10.0.0.0/33", "host:99999", "host:0", "[::1", "[::1]x", "a..b", "-bad-.example"]
)
def test_bad_allow_entries_are_rejected(entry: str) -> None:
    with pytest.raises(AddressPolicyError):
        AddressPolicy.from_allow([entry])
