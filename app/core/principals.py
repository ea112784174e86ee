"""Who is calling, without a database round trip per request.

Each API process keeps the principals of recently seen keys (keyed by the key's SHA-256).
An entry is served only while the *credentials epoch* in Redis is the value it was read
under: every change that can take a credential away (revoking a key, removing a member, the
`herald keys revoke` CLI) writes a new random epoch after its commit and before its response,
so the next request with any cached key re-reads it from the database and a revoked key
answers 401 on the very next request, in every process. The epoch is read in the same Redis
pipeline as the rate-limit counter: a cached request costs one Redis round trip and no SQL.

Random epochs (not a counter) mean a Redis restart or FLUSHALL cannot bring back an old value.
Entries also expire after `TTL` (60 s), which bounds staleness for changes made outside
Herald's code (SQL by hand) and keeps `last_used_at` (written by each database read, at a
one-minute resolution) as current as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import auth
from app.core.auth import EPOCH_KEY, CachedPrincipal, PrincipalCache, bump_epoch
from app.core.clock import utcnow
from app.core.db import after_commit
from app.core.ratelimit import RateLimitStatus, count_and_status, count_request, rate_status

# The database lookup of a bearer token (raises the precise 401), registered by the
# workspaces domain: core authenticates through it without importing a domain.
KeyLookup = Callable[[AsyncSession, str], Awaitable[auth.Principal]]
_key_lookup: KeyLookup | None = None


@dataclass(frozen=True)
class Admission:
    principal: auth.Principal
    rate: RateLimitStatus  # its `retry_after` is set when the key is over its rate limit


def credentials_changed(session: AsyncSession, redis: Redis) -> None:
    """Call in a transaction that revokes or removes credentials: the epoch moves once the
    change has committed (before the response is sent)."""
    after_commit(session, lambda: bump_epoch(redis))


async def admit(
    cache: PrincipalCache,
    redis: Redis,
    session: AsyncSession,
    token: str,
    rate_limit_per_minute: int,
) -> Admission:
    """Authenticate `token` (cached or from the database) and count the request against its
    key's rate limit."""
    if not auth.is_well_formed(token):
        await _authenticate(session, token)  # raises the precise 401
    key_hash = auth.hash_key(token)
    now = utcnow()
    entry = cache.get(key_hash, now)
    if entry is not None:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(EPOCH_KEY)
            count_request(pipe, entry.principal.api_key_id, now)
            epoch, count, _ = await pipe.execute()
        if epoch == entry.epoch:
            return Admission(entry.principal, rate_status(count, rate_limit_per_minute, now))
        cache.drop(key_hash)
    principal = await authenticate(cache, redis, session, token)
    rate = await count_and_status(redis, principal.api_key_id, rate_limit_per_minute, now)
    return Admission(principal, rate)


async def authenticate(
    cache: PrincipalCache, redis: Redis, session: AsyncSession, token: str
) -> auth.Principal:
    """The principal of `token` from the database, remembered under the current epoch.

    The epoch is read *before* the key: a revocation committing after this read moves the
    epoch past the remembered value, so the entry is never served stale."""
    key_hash = auth.hash_key(token)
    now = utcnow()
    epoch = await redis.get(EPOCH_KEY)
    entry = cache.get(key_hash, now)
    if entry is not None and entry.epoch == epoch:
        return entry.principal
    principal = await _authenticate(session, token)
    cache.put(key_hash, CachedPrincipal(principal, epoch, cached_at=now))
    return principal


async def _authenticate(session: AsyncSession, token: str) -> auth.Principal:
    if _key_lookup is None:
        raise RuntimeError("No API key lookup registered (create_app registers the workspaces').")
    return await _key_lookup(session, token)


def register_key_lookup(lookup: KeyLookup) -> None:
    """The workspaces domain owns keys; core only caches what its lookup answers."""
    global _key_lookup  # noqa: PLW0603 - one registration per process, at app creation
    _key_lookup = lookup
