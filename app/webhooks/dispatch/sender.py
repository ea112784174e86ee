"""One HTTP attempt of one webhook delivery: bytes, signed headers, outcome.

The body is the stored envelope serialised compactly (`json.dumps(payload, separators=(",",
":"), ensure_ascii=False)`): Postgres hands the JSONB back in one canonical key order, so
every attempt and every replay of an event sends the same bytes. `webhook-id` is the event's
(`msg_<event id hex>`): the same across retries, replays and endpoints, so receivers can
deduplicate. Every attempt goes through the SSRF guard (`guarded_post`: resolved address
checked, redirects never followed).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.core.egress import DestinationRefused, GuardPolicy, guarded_post
from app.core.signing import signed_headers
from app.webhooks.dispatch.schedule import parse_retry_after

USER_AGENT = "Herald-Webhooks/1"
EXCERPT_BYTES = 1024
ERROR_CHARS = 500


@dataclass(frozen=True)
class Target:
    """What an attempt needs to know about its endpoint."""

    id: uuid.UUID
    url: str
    secrets: tuple[str, ...]  # current first, then the previous one during its overlap


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # one of app.outbox.models.ATTEMPT_OUTCOMES
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: int | None = None
    response_excerpt: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None  # 429's Retry-After, when readable

    @property
    def succeeded(self) -> bool:
        return self.outcome == "success"

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def message_id(event_id: uuid.UUID) -> str:
    return f"msg_{event_id.hex}"


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def secrets_in_use(
    secret: str,
    previous_secret: str | None,
    previous_secret_expires_at: datetime | None,
    now: datetime,
) -> tuple[str, ...]:
    """The current secret, plus the previous one while its overlap lasts."""
    if (
        previous_secret
        and previous_secret_expires_at is not None
        and previous_secret_expires_at > now
    ):
        return (secret, previous_secret)
    return (secret,)


def request_headers(
    secrets: Sequence[str], event_id: uuid.UUID, body: bytes, now: datetime
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signed_headers(secrets, message_id(event_id), int(now.timestamp()), body),
    }


async def _excerpt(response: httpx.Response) -> str:
    """The first KiB of the body; reads no more than that when the response is streamed."""
    if response.is_stream_consumed:
        raw = response.content[:EXCERPT_BYTES]
    else:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size >= EXCERPT_BYTES:
                    break
        finally:
            await response.aclose()
        raw = b"".join(chunks)[:EXCERPT_BYTES]
    return raw.decode("utf-8", errors="replace")


def _error_text(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:ERROR_CHARS]


async def attempt(
    http: httpx.AsyncClient,
    target: Target,
    event_id: uuid.UUID,
    payload: dict[str, Any],
    *,
    now: datetime,
    timeout: float,  # noqa: ASYNC109 - handed to the guard's request, which enforces it
    policy: GuardPolicy,
) -> AttemptResult:
    """POST the event once and classify what happened. Never raises for the peer's
    behaviour: every failure is an outcome."""
    body = body_bytes(payload)
    headers = request_headers(target.secrets, event_id, body, now)
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        response = await guarded_post(
            http, target.url, content=body, headers=headers, timeout=timeout, policy=policy
        )
    except DestinationRefused as error:
        return AttemptResult("refused", now, error=_error_text(error))
    except httpx.TimeoutException as error:
        return AttemptResult("timeout", now, latency_ms=elapsed(), error=_error_text(error))
    except Exception as error:  # any transport failure (or a malformed URL) is an outcome
        return AttemptResult(
            "connection_error", now, latency_ms=elapsed(), error=_error_text(error)
        )
    try:
        excerpt = await _excerpt(response)
    except httpx.TimeoutException:
        excerpt = ""
    except httpx.HTTPError:
        excerpt = ""
    latency = elapsed()
    status = response.status_code
    if 200 <= status < 300:
        return AttemptResult("success", now, status, latency, excerpt)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        return AttemptResult(
            "rate_limited", now, status, latency, excerpt, "HTTP 429", retry_after=retry_after
        )
    if 300 <= status < 400:
        reason = f"HTTP {status}: redirects are not followed"
    else:
        reason = f"HTTP {status}"
    return AttemptResult("http_error", now, status, latency, excerpt, reason)
