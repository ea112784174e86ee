"""Per-key request rate limit shared by every API process through Redis.

A fixed one-minute window per key: one INCR per request, no Lua, no clock skew between
processes (the window index comes from the one clock). A burst straddling a window edge can
reach twice the limit for a moment; that is the documented trade for one round trip.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from redis.asyncio import Redis

WINDOW_SECONDS = 60


async def retry_after_if_limited(
    redis: Redis, key_id: uuid.UUID, limit_per_minute: int, now: datetime
) -> int | None:
    """Count this request; return seconds to wait when the key is over its limit."""
    epoch = int(now.timestamp())
    counter = f"herald:ratelimit:{key_id}:{epoch // WINDOW_SECONDS}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, WINDOW_SECONDS * 2)
        count, _ = await pipe.execute()
    if int(count) <= limit_per_minute:
        return None
    return max(1, WINDOW_SECONDS - epoch % WINDOW_SECONDS)
