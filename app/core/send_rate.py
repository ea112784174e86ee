"""Per-provider send rate, shared by every worker through Redis: GCRA with reservations.

One key per provider holds the theoretical arrival time (TAT) of the next send, in
microseconds of Redis' own clock (`TIME`), so workers on several machines share one
timeline without trusting each other's clocks. `reserve` books the next free slot:
`slot = max(TAT, now)`, `TAT = slot + 1/rate`, and answers how long to wait for it. A slot
more than `HORIZON` ahead is not booked: the caller waits until it could be, then asks
again. The sends of all workers together are thus spaced exactly `1/rate` apart while a
backlog lasts (no burst per second, no idle gap at a window edge); an idle period gives no
credit (`max(TAT, now)`), so a peer never sees more than the configured rate.

No maintained library offers reservations (a wait for a booked slot instead of a refusal
that every waiter retries at once), hence these ten lines of Lua. A slot booked by a
worker that then dies is lost: at most `HORIZON` of sending time, never a message.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, cast

from redis.asyncio import Redis

HORIZON_SECONDS = 1.0  # how far ahead a slot may be booked

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(tat, now)
if slot - now > horizon then
  return {0, slot - now - horizon}
end
redis.call('SET', KEYS[1], string.format('%d', slot + interval), 'PX', 60000)
return {1, slot - now}
"""


def key(provider: str) -> str:
    return f"herald:channels:gcra:{provider}"


async def reserve(redis: Redis, provider: str, per_second: int) -> tuple[bool, float]:
    """Book the provider's next send slot. (True, wait): the slot is yours, send after
    `wait` seconds. (False, wait): nothing booked, ask again after `wait` seconds."""
    interval = 1_000_000 // max(per_second, 1)
    script = redis.register_script(_RESERVE)  # EVALSHA: the script's text is sent once
    booked, wait_us = await cast(
        Awaitable[Any],
        script(keys=[key(provider)], args=[interval, int(HORIZON_SECONDS * 1e6)]),
    )
    return bool(booked), int(wait_us) / 1e6


# --- fixed window (outbound webhook dispatch only) -------------------------------------------
# Webhook dispatch (app/webhooks/dispatch) still grants per one-second window of the one
# clock; message delivery uses `reserve` above.

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
    """How many of `wanted` sends may go out in the current one-second window."""
    if wanted <= 0:
        return 0
    window = int(now.timestamp())
    key = f"herald:channels:rate:{provider}:{window}"
    granted = await cast(Awaitable[Any], redis.eval(_GRANT, 1, key, str(per_second), str(wanted)))
    return int(granted)


def next_window(now: datetime) -> datetime:
    """The start of the next one-second window."""
    return now.replace(microsecond=0) + WINDOW
