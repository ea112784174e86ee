"""API keys as credentials, and scopes as permissions.

A key looks like `hk_<43 url-safe chars>`. Only its SHA-256 is stored (the key carries 256
random bits, so a slow hash adds nothing), plus a short display prefix.

Scopes are `read` < `write` < `admin`, granted workspace-wide (`write`) or for one area
(`contacts:write`). A higher level implies the lower ones.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from redis.asyncio import Redis

KEY_PREFIX = "hk_"
DISPLAY_PREFIX_LENGTH = 11
_KEY_PATTERN = re.compile(r"^hk_[A-Za-z0-9_-]{43}$")

Level = Literal["read", "write", "admin"]
LEVELS: dict[str, int] = {"read": 1, "write": 2, "admin": 3}
AREAS = (
    "workspace",
    "members",
    "api_keys",
    "contacts",
    "events",
    "segments",
    "templates",
    "sequences",
    "campaigns",
    "approvals",
    "webhooks",
    "metrics",
    "audit",
)
VALID_SCOPES = frozenset([*LEVELS, *(f"{area}:{level}" for area in AREAS for level in LEVELS)])


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]


def is_well_formed(token: str) -> bool:
    return bool(_KEY_PATTERN.match(token))


@dataclass(frozen=True)
class Principal:
    """Who is calling: the workspace comes from the key, never from the request."""

    workspace_id: uuid.UUID
    api_key_id: uuid.UUID
    member_id: uuid.UUID | None
    scopes: frozenset[str]

    def allows(self, area: str, level: Level) -> bool:
        needed = LEVELS[level]
        for scope in self.scopes:
            scope_area, _, scope_level = scope.rpartition(":")
            if scope_area in ("", area) and LEVELS.get(scope_level, 0) >= needed:
                return True
        return False

    def can_grant(self, scope: str) -> bool:
        """Whether `scope` is within this key's own scopes (the key-creation ceiling).

        An area scope (`contacts:write`) is within any scope that allows it; a workspace-wide
        scope (`write`, `admin`) only within a workspace-wide scope at least as high."""
        area, _, level = scope.rpartition(":")
        if area:
            return level in LEVELS and self.allows(area, cast(Level, level))
        needed = LEVELS.get(level, len(LEVELS) + 1)
        return any(":" not in held and LEVELS.get(held, 0) >= needed for held in self.scopes)


# The principal cache (app/core/principals.py explains the protocol).
EPOCH_KEY = "herald:auth:epoch"
TTL = timedelta(seconds=60)
MAX_ENTRIES = 10_000


@dataclass
class CachedPrincipal:
    principal: Principal
    epoch: bytes | None
    cached_at: datetime


class PrincipalCache:
    """Per process; bounded (oldest entries dropped first)."""

    def __init__(self, ttl: timedelta = TTL, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[str, CachedPrincipal] = OrderedDict()

    def get(self, key_hash: str, now: datetime) -> CachedPrincipal | None:
        entry = self._entries.get(key_hash)
        if entry is not None and now - entry.cached_at >= self._ttl:
            del self._entries[key_hash]
            return None
        return entry

    def put(self, key_hash: str, entry: CachedPrincipal) -> None:
        self._entries[key_hash] = entry
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)

    def __len__(self) -> int:
        return len(self._entries)


async def bump_epoch(redis: Redis) -> None:
    """Make every process re-read every cached key on its next use."""
    await redis.set(EPOCH_KEY, secrets.token_hex(8))
