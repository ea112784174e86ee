"""SSRF guard units: address classes, embedded IPv4, the allow-list, numeric host forms
read as the C resolver reads them, and URL parsing (the integration tests with a real
listener are in test_ssrf.py)."""

from __future__ import annotations

import ipaddress

import pytest

from app.config import WebhookSettings
from app.core.egress import (
    DestinationRefused,
    GuardPolicy,
    address_class,
    parse_inet_aton,
    parse_target,
    refusal,
)

# --- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback"),
        ("127.255.255.254", "a loopback"),
        ("10.1.2.3", "a private"),
        ("172.31.255.255", "a private"),
        ("192.168.0.1", "a private"),
        ("169.254.169.254", "a link-local"),
        ("100.64.0.1", "a shared (carrier-grade NAT)"),
        ("0.0.0.0", "an unspecified"),
        ("0.1.2.3", "an unspecified"),
        ("224.0.0.1", "a multicast"),
        ("239.255.255.250", "a multicast"),
        ("240.0.0.1", "a reserved"),
        ("255.255.255.255", "a broadcast"),
        ("192.0.0.8", "a reserved (IETF protocol)"),
        ("192.0.2.1", "a reserved (documentation)"),
        ("198.18.0.1", "a reserved (benchmarking)"),
        ("8.8.8.8", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("::1", "a loopback"),
        ("::", "an unspecified"),
        ("fe80::1", "a link-local"),
        ("fc00::1", "a private (unique local)"),
        ("fd12:3456::1", "a private (unique local)"),
        ("fec0::1", "a private (site-local)"),
        ("ff02::1", "a multicast"),
        ("::ffff:10.0.0.1", "a private"),
        ("::ffff:169.254.169.254", "a link-local"),
        ("::ffff:8.8.8.8", None),
        ("::7f00:1", "a reserved (IPv4-compatible)"),
        ("100::1", "a reserved (discard)"),
        ("2001:db8::1", "a reserved (documentation)"),
        ("4000::1", "a reserved"),
        ("2606:4700:4700::1111", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_address_classes(address: str, kind: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:a00:5::1", "2002:a00:5::1, which embeds 10.0.0.5, a private address"),
        ("64:ff9b::a9fe:a9fe", "which embeds 169.254.169.254, a link-local address"),
        # Teredo: server 65.54.227.120, client (inverted) 127.0.0.1.
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "which embeds 127.0.0.1, a loopback"),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "a reserved (IETF protocol) address"),
        ("2002:808:808::1", None),
    ],
)
def test_embedded_ipv4_addresses_are_judged(address: str, reason: str | None) -> None:
    found = refusal(ipaddress.ip_address(address), GuardPolicy())
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert reason in found


def test_the_allow_list_admits_its_networks_only() -> None:
    policy = GuardPolicy.from_settings(WebhookSettings(allowed_networks=["10.0.0.0/8"]))

    for allowed in ["10.0.0.5", "::ffff:10.0.0.5", "2002:a00:5::1"]:
        assert refusal(ipaddress.ip_address(allowed), policy) is None
    for refused in ["172.16.0.1", "127.0.0.1", "::1"]:
        assert refusal(ipaddress.ip_address(refused), policy) is not None
    # A zone id is never a destination, allow-list or not.
    link_local = GuardPolicy(allowed_networks=(ipaddress.ip_network("fe80::/10"),))
    assert refusal(ipaddress.ip_address("fe80::1"), link_local) is None
    assert refusal(ipaddress.ip_address("fe80::1%eth0"), link_local) is not None


def test_settings_overrides_are_matched_case_insensitively() -> None:
    policy = GuardPolicy.from_settings(
        WebhookSettings(resolve_overrides={"Hooks.Example.": "127.0.0.1"})
    )
    assert policy.override_for(parse_target("http://HOOKS.example./").host) == "127.0.0.1"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("00000177.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0xa.0xfe.0x1", "10.254.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("1.2.3.4.5", None),
        ("08.0.0.1", None),
        ("0x", None),
        ("256.1", None),
        ("1.16777216", None),
        ("4294967296", None),
        ("1..1", None),
        ("example", None),
        ("", None),
    ],
)
def test_numeric_hosts_are_read_as_the_c_resolver_reads_them(
    host: str, address: str | None
) -> None:
    parsed = parse_inet_aton(host)
    assert (str(parsed) if parsed is not None else None) == address


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1/", "not a valid URL"),
        ("http://[v1.fe]/", "not a valid IPv6 address"),
        ("http://[127.0.0.1]/", "not a valid"),
        ("http://hooks.example:99999/", "not a valid URL"),
        ("http://hooks.example:0/", "port 0"),
        ("http://@hooks.example/", "credentials"),
        ("http://hooks.example\t/", "whitespace or control"),
        ("http://hooks..example/", "not a valid host name"),
        ("http://hooks_example!/", "not a valid host name"),
        ("javascript:alert(1)", "only http and https"),
        ("//hooks.example/", "only http and https"),
    ],
)
def test_malformed_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(DestinationRefused, match=reason):
        parse_target(url)


def test_the_default_port_is_left_out_of_host() -> None:
    target = parse_target("https://Hooks.Example:443/a")
    assert (target.host_header, target.port, target.path) == ("hooks.example", 443, "/a")
    target = parse_target("http://hooks.example:8080")
    assert (target.host_header, target.port, target.path) == ("hooks.example:8080", 8080, "/")


def test_an_idn_host_is_sent_in_its_ascii_form() -> None:
    assert parse_target("https://bücher.example/").host_header == "xn--bcher-kva.example"
