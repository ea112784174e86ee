"""Per-key request rate limit shared by every API process through Redis.

A fixed one-minute window per key: one INCR per request (pipelined with the credentials
epoch read, app/core/principals.py), no Lua, no clock skew between
processes (the window index comes from the one clock). A burst straddling a window edge can
reach twice the limit for a moment; that is the documented trade for one round trip.

The state of the caller's window is told on every response to an admitted request with the
IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, structured fields):
`RateLimit-Policy: "per-key";q=600;w=60` (quota per window) and `RateLimit: "per-key";r=12;t=40`
(remaining requests, seconds until the window resets); a 429 adds `Retry-After`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WINDOW_SECONDS = 60
POLICY = "per-key"
# Where the API's auth dependency leaves this request's RateLimitStatus (request.state).
STATE_KEY = "rate_limit"


@dataclass(frozen=True)
class RateLimitStatus:
    limit: int
    remaining: int
    reset_seconds: int  # until the current window ends
    retry_after: int | None  # set when the request is over the limit

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-policy", f'"{POLICY}";q={self.limit};w={WINDOW_SECONDS}'.encode()),
            (b"ratelimit", f'"{POLICY}";r={self.remaining};t={self.reset_seconds}'.encode()),
        ]


def rate_status(count: int, limit_per_minute: int, now: datetime) -> RateLimitStatus:
    """The window's state after this request, the `count`-th of the window."""
    reset = max(1, WINDOW_SECONDS - int(now.timestamp()) % WINDOW_SECONDS)
    over = int(count) > limit_per_minute
    return RateLimitStatus(
        limit=limit_per_minute,
        remaining=max(0, limit_per_minute - int(count)),
        reset_seconds=reset,
        retry_after=reset if over else None,
    )


def count_request(pipe: Pipeline, key_id: uuid.UUID, now: datetime) -> None:
    """Queue this request's count on `pipe` (two replies: the count, then EXPIRE's)."""
    counter = f"herald:ratelimit:{key_id}:{int(now.timestamp()) // WINDOW_SECONDS}"
    pipe.incr(counter)
    pipe.expire(counter, WINDOW_SECONDS * 2)


def retry_after(count: int, limit_per_minute: int, now: datetime) -> int | None:
    """Seconds to wait when `count` requests in this window exceed the limit, else None."""
    return rate_status(count, limit_per_minute, now).retry_after


async def count_and_status(
    redis: Redis, key_id: uuid.UUID, limit_per_minute: int, now: datetime
) -> RateLimitStatus:
    """Count this request on its own round trip; the window's state after it."""
    async with redis.pipeline(transaction=False) as pipe:
        count_request(pipe, key_id, now)
        count, _ = await pipe.execute()
    return rate_status(count, limit_per_minute, now)


class RateLimitHeadersMiddleware:
    """Adds the RateLimit fields to the response of every request the limiter counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_rate(message: Message) -> None:
            status = scope.get("state", {}).get(STATE_KEY)
            if message["type"] == "http.response.start" and isinstance(status, RateLimitStatus):
                message["headers"] = [*message.get("headers", []), *status.headers()]
            await send(message)

        await self.app(scope, receive, send_with_rate)
