"""SSRF guard for every outbound URL Herald calls (webhook endpoints, webhook steps).

CONTRACT (implemented by the SSRF helper; signatures fixed):
- `check_url(url, policy)` at registration: http(s) only, host present, every resolved
  address public (or inside `policy.allowed_networks`); raises `DestinationRefused`.
- `guarded_post(...)` at send time: resolves once, checks every address, connects to the
  checked address only (DNS rebinding), never follows redirects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from app.config import WebhookSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(Exception):
    """The URL may not be called; `str(error)` says why (safe to show to the caller)."""


@dataclass(frozen=True)
class GuardPolicy:
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve_overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> GuardPolicy:
        return cls(
            tuple(ipaddress.ip_network(n, strict=False) for n in settings.allowed_networks),
            dict(settings.resolve_overrides),
        )


async def check_url(url: str, policy: GuardPolicy) -> None:
    raise NotImplementedError


async def guarded_post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,
    policy: GuardPolicy,
) -> httpx.Response:
    raise NotImplementedError
