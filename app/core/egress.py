"""SSRF guard for every outbound URL Herald calls (webhook endpoints, webhook steps).

- `check_url(url, policy)` at registration: http(s) only, a host, no credentials, every
  resolved address public (or inside `policy.allowed_networks`); raises `DestinationRefused`.
- `guarded_post(...)` at send time: resolves once, checks every address, connects to a
  checked address only (the URL's host is replaced by the address; `Host` and TLS SNI keep
  the name), so a DNS answer that changes between check and connect (DNS rebinding) cannot
  steer the connection; never follows redirects.

What is refused and why: docs/ssrf.md.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import re
import socket
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

import httpx

from app.config import WebhookSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
# A name whose resolution takes longer is refused (registration) / fails the attempt (send).
RESOLVE_TIMEOUT_SECONDS = 10.0
# The answer's body is read up to this many bytes (callers keep a 1 KiB excerpt): a
# receiver streaming gigabytes cannot exhaust the worker's memory.
MAX_RESPONSE_BYTES = 64 * 1024
# A name resolving to more addresses than this is refused (no legitimate receiver needs it).
MAX_ADDRESSES = 32

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_CHARACTERS = frozenset(string.ascii_lowercase + string.digits + "-._")
# Headers the guard owns: the caller's values would defeat the pinning.
_OWNED_HEADERS = frozenset({"host", "connection", "transfer-encoding", "content-length"})
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f\s]")

# httpcore asks `import sniffio` for every lock and event it makes (several per request);
# without the package installed each of those is a failed import that walks `sys.path`
# (about a quarter of an attempt's CPU, measured). Recording the absence once makes the
# failure immediate; httpcore then assumes asyncio, as it does anyway. A no-op when sniffio
# is installed. See docs/benchmarks.md, "Webhooks".
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


class DestinationRefused(Exception):
    """The URL may not be called; `str(error)` says why (safe to show to the caller)."""


class DestinationUnresolved(DestinationRefused):
    """The host name did not resolve (no such name, resolver failure or timeout). Refused at
    registration; at send time it may be temporary, so callers may retry it."""


@dataclass(frozen=True)
class GuardPolicy:
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve_overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> GuardPolicy:
        return cls(
            tuple(ipaddress.ip_network(n, strict=False) for n in settings.allowed_networks),
            {name.lower().rstrip("."): ip for name, ip in settings.resolve_overrides.items()},
        )

    def allows(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed_networks)

    def override_for(self, host: str) -> str | None:
        """The configured address for `host` (keys: lower-case names without a final dot);
        exactly one lookup per resolution."""
        return self.resolve_overrides.get(host.rstrip("."))


# --- address classes ------------------------------------------------------------------------

_V4_CLASSES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(cidr), name)
    for cidr, name in (
        ("0.0.0.0/8", "an unspecified"),
        ("10.0.0.0/8", "a private"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "a loopback"),
        ("169.254.0.0/16", "a link-local"),
        ("172.16.0.0/12", "a private"),
        ("192.0.0.0/24", "a reserved (IETF protocol)"),
        ("192.0.2.0/24", "a reserved (documentation)"),
        ("192.88.99.0/24", "a reserved (6to4 relay)"),
        ("192.168.0.0/16", "a private"),
        ("198.18.0.0/15", "a reserved (benchmarking)"),
        ("198.51.100.0/24", "a reserved (documentation)"),
        ("203.0.113.0/24", "a reserved (documentation)"),
        ("224.0.0.0/4", "a multicast"),
        ("255.255.255.255/32", "a broadcast"),
        ("240.0.0.0/4", "a reserved"),
    )
)

_V6_CLASSES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(cidr), name)
    for cidr, name in (
        ("::/128", "an unspecified"),
        ("::1/128", "a loopback"),
        ("fe80::/10", "a link-local"),
        ("fec0::/10", "a private (site-local)"),
        ("fc00::/7", "a private (unique local)"),
        ("ff00::/8", "a multicast"),
        ("64:ff9b:1::/48", "a private (local NAT64)"),
        ("100::/64", "a reserved (discard)"),
        ("2001:db8::/32", "a reserved (documentation)"),
        ("3fff::/20", "a reserved (documentation)"),
        ("2001:2::/48", "a reserved (benchmarking)"),
        ("2001::/23", "a reserved (IETF protocol)"),
        ("5f00::/16", "a reserved (segment routing)"),
    )
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V6_TEREDO = ipaddress.IPv6Network("2001::/32")


def normalised(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a translation prefix sends the traffic to: NAT64 (64:ff9b::/96),
    6to4 (2002::/16), Teredo (server and client)."""
    if address in _V6_NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address in _V6_TEREDO and address.teredo is not None:
        return list(address.teredo)
    return []


def address_class(address: IPAddress) -> str | None:
    """Why `address` is not a public destination ("a private"...), None when it is."""
    address = normalised(address)
    if isinstance(address, ipaddress.IPv4Address):
        for network, name in _V4_CLASSES:
            if address in network:
                return name
        return None
    # ::/96 minus :: and ::1 (matched below): deprecated IPv4-compatible addresses.
    if int(address) >> 32 == 0 and int(address) > 1:
        return "a reserved (IPv4-compatible)"
    for v6_network, name in _V6_CLASSES:
        if address in v6_network:
            return name
    if address not in _V6_GLOBAL_UNICAST and address not in _V6_NAT64:
        return "a reserved"
    if address.scope_id:
        return "a scoped (zone id)"
    return None


def refusal(address: IPAddress, policy: GuardPolicy) -> str | None:
    """Why `policy` forbids connecting to `address` ("10.0.0.5, a private address"), or None.
    An address inside an allowed network is allowed whatever its class; an IPv6 address that
    carries an IPv4 one (NAT64, 6to4, Teredo) is judged on the embedded address too."""
    address = normalised(address)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        # Never allowed, whatever the allow-list: a zone id is not a routable destination.
        return f"{address}, {address_class(address) or 'a scoped (zone id)'} address"
    if policy.allows(address):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        for inner in embedded_ipv4(address):
            inner_kind = None if policy.allows(inner) else address_class(inner)
            if inner_kind is not None:
                return f"{address}, which embeds {inner}, {inner_kind} address"
    kind = address_class(address)  # Teredo (in 2001::/23) is refused even when public
    return None if kind is None else f"{address}, {kind} address"


# --- URL and host parsing -------------------------------------------------------------------


def parse_inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address the C resolver reads in `host` (inet_aton rules: 1 to 4 dotted parts,
    each decimal, `0x` hex or `0` octal, the last part filling the remaining bytes:
    `127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`), None when it is not such a number."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            digits, base = part[2:], 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        allowed = {16: string.hexdigits, 8: string.octdigits, 10: string.digits}[base]
        if not digits or any(char not in allowed for char in digits):
            return None
        values.append(int(digits, base))
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


@dataclass(frozen=True)
class Target:
    """A parsed, not yet resolved URL."""

    scheme: str
    host: str  # ASCII (IDNA), lower case, no brackets, no trailing-dot changes
    port: int
    literal: IPAddress | None  # the host is an address (any form the C resolver reads)
    host_header: str  # `host[:port]` as the receiver expects it in `Host`
    path: str  # path + query, at least "/"


def parse_target(url: str) -> Target:
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _SPACE_OR_CONTROL.search(url):
        raise DestinationRefused("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise DestinationRefused(f"not a valid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise DestinationRefused("only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise DestinationRefused("credentials in the URL are not allowed")
    host = _host(parts)
    if port == 0:
        raise DestinationRefused("port 0 is not a valid port")
    literal = _literal(host)
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        shown = f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, host, port or _DEFAULT_PORTS[scheme], literal, shown, path)


def _host(parts: SplitResult) -> str:
    host = parts.hostname  # lower case, brackets removed
    if not host:
        raise DestinationRefused("the URL has no host")
    if parts.netloc.startswith("[") or ":" in host:
        if ":" not in host:  # [v1.x] (IPvFuture) or other bracketed non-IPv6
            raise DestinationRefused("the URL's host is not a valid IPv6 address")
        return host  # an IPv6 literal, validated by _literal
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise DestinationRefused("the URL's host is not a valid host name") from None
    if not set(host) <= _HOST_CHARACTERS or ".." in host or host.startswith("."):
        raise DestinationRefused("the URL's host is not a valid host name")
    return host


def _literal(host: str) -> IPAddress | None:
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise DestinationRefused("the URL's host is not a valid IPv6 address") from None
    return parse_inet_aton(host)


# --- resolution and checks ------------------------------------------------------------------


async def resolve(target: Target, policy: GuardPolicy) -> list[IPAddress]:
    """The addresses the URL's host stands for, in the resolver's order of preference."""
    if target.literal is not None:
        return [target.literal]
    override = policy.override_for(target.host)
    if override is not None:
        try:
            return [ipaddress.ip_address(override)]
        except ValueError:
            raise DestinationRefused(
                f"the resolve override for {target.host} is not an IP address"
            ) from None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            answers = await loop.getaddrinfo(
                target.host,
                target.port,
                type=socket.SOCK_STREAM,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_ADDRCONFIG,
            )
    except TimeoutError:
        raise DestinationUnresolved(f"{target.host} did not resolve in time") from None
    except (OSError, UnicodeError):
        raise DestinationUnresolved(f"{target.host} does not resolve to an address") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        text = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3] and "%" not in text:
            text = f"{text}%{sockaddr[3]}"
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DestinationUnresolved(f"{target.host} does not resolve to an address")
    if len(addresses) > MAX_ADDRESSES:
        raise DestinationRefused(f"{target.host} resolves to too many addresses")
    return addresses


async def checked_addresses(url: str, policy: GuardPolicy) -> tuple[Target, list[IPAddress]]:
    """Parse, resolve and judge: the target and its addresses (all allowed), or refused."""
    target = parse_target(url)
    addresses = await resolve(target, policy)
    for address in addresses:
        reason = refusal(address, policy)
        if reason is None:
            continue
        if target.literal is not None:
            raise DestinationRefused(f"the URL's host is {reason}")
        raise DestinationRefused(f"{target.host} resolves to {reason}")
    return target, [normalised(address) for address in addresses]


async def check_url(url: str, policy: GuardPolicy) -> None:
    await checked_addresses(url, policy)


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    content: bytes
    headers: Mapping[str, str]
    timeout_seconds: float


def pinned_request(
    client: httpx.AsyncClient, target: Target, address: IPAddress, outgoing: Outgoing
) -> httpx.Request:
    """A POST to `address` itself, the name kept in `Host` and (https) in TLS SNI and
    certificate verification. Built directly, not with `client.build_request`, so the
    client's cookie jar is never sent to a tenant's receiver."""
    host = f"[{address}]" if address.version == 6 else str(address)
    # The client's default headers, then the caller's (replacing a default of the same
    # name), then the guard's own: a plain list, no case-folding mapping to rebuild.
    own = {
        name.lower(): value
        for name, value in outgoing.headers.items()
        if name.lower() not in _OWNED_HEADERS
    }
    replaced = own.keys() | {"host"} | ({"connection"} if target.scheme == "https" else set())
    merged = [
        (name, value)
        for name, value in client.headers.multi_items()
        if name.lower() not in replaced
    ]
    merged.extend(own.items())
    merged.append(("host", target.host_header))
    extensions: dict[str, object] = {"timeout": httpx.Timeout(outgoing.timeout_seconds).as_dict()}
    if target.scheme == "https":
        if target.literal is None:
            extensions["sni_hostname"] = target.host.rstrip(".")
        # A pooled connection is keyed by address, not name: a TLS connection verified for
        # another name on the same address must not carry this request. One connection per
        # https attempt.
        merged.append(("connection", "close"))
    return httpx.Request(
        "POST",
        f"{target.scheme}://{host}:{target.port}{target.path}",
        headers=merged,
        content=outgoing.content,
        extensions=extensions,
    )


async def guarded_post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - the contract's name; applied with asyncio.timeout below
    policy: GuardPolicy,
) -> httpx.Response:
    """POST `content` to `url` if the policy allows every address it resolves to.

    Raises `DestinationRefused` before any connection, `httpx.TimeoutException` when the whole
    attempt (resolution, connection, request, answer) exceeds `timeout` seconds, other
    `httpx.TransportError`s as httpx does. A redirect is returned as it is, never followed.
    The returned response's body holds at most `MAX_RESPONSE_BYTES` (decoded)."""
    try:
        async with asyncio.timeout(timeout):
            target, addresses = await checked_addresses(url, policy)
            outgoing = Outgoing(content, headers, timeout)
            return await _post_first_reachable(client, target, addresses, outgoing)
    except TimeoutError:
        raise httpx.TimeoutException(f"the attempt took longer than {timeout:g} s") from None


async def _post_first_reachable(
    client: httpx.AsyncClient, target: Target, addresses: list[IPAddress], outgoing: Outgoing
) -> httpx.Response:
    """Try the (checked) addresses in order while connecting fails: nothing was sent yet, so
    moving on cannot deliver twice."""
    for index, address in enumerate(addresses):
        request = pinned_request(client, target, address, outgoing)
        try:
            answer = await _send(client, request)
        except httpx.ConnectError:
            if index == len(addresses) - 1:
                raise
            continue
        try:
            body = await _capped_body(answer)
        finally:
            await answer.aclose()
        return httpx.Response(
            answer.status_code,
            headers=[
                (name, value)
                for name, value in answer.headers.multi_items()
                if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ],
            content=body,
            request=request,
            extensions={"http_version": answer.extensions.get("http_version", b"HTTP/1.1")},
        )
    raise AssertionError("no address to try")  # checked_addresses never returns none


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Hand the request to the transport the client would use for its URL (its mounts and
    environment proxies included), without the client's cookie jar, auth, event hooks and
    redirect handling: a tenant's receiver cannot set cookies in the shared client, nothing
    is ever followed, and the per-request bookkeeping we do not use is not paid for."""
    if client.is_closed:
        raise RuntimeError("the HTTP client is closed")
    transport = client._transport_for_url(request.url)
    answer = await transport.handle_async_request(request)
    answer.request = request
    return answer


async def _capped_body(answer: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.aiter_bytes():
        chunks.append(chunk[: MAX_RESPONSE_BYTES - size])
        size += len(chunks[-1])
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)
