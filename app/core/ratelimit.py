"""Per-key request rate limit shared by every API process through Redis.

A fixed one-minute window per key: one INCR per request (pipelined with the credentials
epoch read, app/core/principals.py), no Lua, no clock skew between
processes (the window index comes from the one clock). A burst straddling a window edge can
reach twice the limit for a moment; that is the documented trade for one round trip.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

WINDOW_SECONDS = 60


def count_request(pipe: Pipeline, key_id: uuid.UUID, now: datetime) -> None:
    """Queue this request's count on `pipe` (two replies: the count, then EXPIRE's)."""
    counter = f"herald:ratelimit:{key_id}:{int(now.timestamp()) // WINDOW_SECONDS}"
    pipe.incr(counter)
    pipe.expire(counter, WINDOW_SECONDS * 2)


def retry_after(count: int, limit_per_minute: int, now: datetime) -> int | None:
    """Seconds to wait when `count` requests in this window exceed the limit, else None."""
    if int(count) <= limit_per_minute:
        return None
    return max(1, WINDOW_SECONDS - int(now.timestamp()) % WINDOW_SECONDS)


async def retry_after_if_limited(
    redis: Redis, key_id: uuid.UUID, limit_per_minute: int, now: datetime
) -> int | None:
    """Count this request on its own round trip; seconds to wait when over the limit."""
    async with redis.pipeline(transaction=False) as pipe:
        count_request(pipe, key_id, now)
        count, _ = await pipe.execute()
    return retry_after(count, limit_per_minute, now)
