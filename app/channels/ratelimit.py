"""Per-provider send rate, shared by every worker through Redis.

A fixed one-second window per provider: one Lua call grants up to N sends at once (a
batch asks for all it holds), so the check is atomic across workers and costs one round
trip per batch. The window index comes from the one clock. Messages that get no grant wait
for the next window (not counted as an attempt).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, cast

from redis.asyncio import Redis

WINDOW = timedelta(seconds=1)

_GRANT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[2]), math.max(tonumber(ARGV[1]) - used, 0))
if grant > 0 then
  redis.call('INCRBY', KEYS[1], grant)
  redis.call('EXPIRE', KEYS[1], 10)
end
return grant
"""


async def acquire(redis: Redis, provider: str, wanted: int, per_second: int, now: datetime) -> int:
    """How many of `wanted` sends may go out in the current window."""
    if wanted <= 0:
        return 0
    window = int(now.timestamp())
    key = f"herald:channels:rate:{provider}:{window}"
    granted = await cast(Awaitable[Any], redis.eval(_GRANT, 1, key, str(per_second), str(wanted)))
    return int(granted)


def next_window(now: datetime) -> datetime:
    """The start of the next one-second window."""
    return now.replace(microsecond=0) + WINDOW
