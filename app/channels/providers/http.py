"""The HTTP provider (POST JSON to a configured URL) and the classification of HTTP answers
shared with webhook steps."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from app.channels.providers.base import (
    OutboundMessage,
    PermanentError,
    Provider,
    RetryableError,
    SendResult,
)
from app.config import HttpProviderSettings
from app.core.clock import utcnow
from app.core.egress import DestinationRefused, DestinationUnresolved, GuardPolicy, guarded_post

EXCERPT_BYTES = 1024
# A Retry-After further away than this is clamped (a peer cannot park a message for months).
MAX_RETRY_AFTER_SECONDS = 86_400.0


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - utcnow()).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


async def post_classified(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_seconds: float,
    *,
    guard: GuardPolicy | None = None,
) -> SendResult:
    """POST without following redirects; 2xx is success, 5xx/429/timeouts/connection errors
    are retryable, anything else (3xx, other 4xx) is permanent. The answer is recorded as
    {status_code, latency_ms, excerpt}.

    With a `guard` (webhook steps: URLs chosen by tenants) the POST goes through the SSRF guard:
    a refused destination is permanent, a name that does not resolve is retryable. Without
    one (the operator's configured provider URL) it is a plain POST."""
    started = time.perf_counter()
    all_headers = {"Content-Type": "application/json", **headers}
    try:
        if guard is None:
            answer = await client.post(
                url,
                content=body,
                headers=all_headers,
                timeout=timeout_seconds,
                follow_redirects=False,
            )
        else:
            answer = await guarded_post(
                client,
                url,
                content=body,
                headers=all_headers,
                timeout=timeout_seconds,
                policy=guard,
            )
    except DestinationUnresolved as error:
        raise RetryableError(f"destination refused: {error}") from error
    except DestinationRefused as error:
        raise PermanentError(f"destination refused: {error}") from error
    except httpx.TimeoutException as error:
        raise RetryableError(f"timeout: {type(error).__name__}") from error
    except httpx.TransportError as error:
        raise RetryableError(f"connection error: {type(error).__name__}: {error}"[:500]) from error
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    excerpt = answer.content[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    record: dict[str, Any] = {
        "status_code": answer.status_code,
        "latency_ms": latency_ms,
        "excerpt": excerpt,
    }
    status = answer.status_code
    if 200 <= status < 300:
        return SendResult(provider_message_id=_provider_id(answer), response=record)
    reason = f"HTTP {status}"
    if status == 429 or status >= 500:
        delay = retry_after_seconds(answer.headers.get("retry-after"))
        raise RetryableError(reason, record, retry_after_seconds=delay)
    if 300 <= status < 400:
        raise PermanentError(f"{reason}: redirects are not followed", record)
    raise PermanentError(reason, record)


def _provider_id(answer: httpx.Response) -> str | None:
    """`id` (or `message_id`) of a JSON answer, when the provider gives one."""
    try:
        data = answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(data, dict):
        value = data.get("id", data.get("message_id"))
        if isinstance(value, str | int):
            return str(value)[:255]
    return None


class HttpProvider(Provider):
    """POST `{id, channel, to, content}` with the message id as `Idempotency-Key`, so a
    retry after a lost answer is deduplicated by the receiver."""

    name = "http"

    def __init__(self, settings: HttpProviderSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, message: OutboundMessage) -> SendResult:
        if not self.settings.url:
            raise PermanentError("HERALD_CHANNELS__HTTP__URL is not configured")
        body = json.dumps(
            {
                "id": str(message.id),
                "channel": message.channel,
                "to": message.recipient,
                "content": message.content,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        headers = {"Idempotency-Key": str(message.id)}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        result = await post_classified(
            self.client, self.settings.url, body, headers, self.settings.timeout_seconds
        )
        return SendResult(result.provider_message_id or f"http-{message.id}", result.response)


def now_epoch() -> int:
    return int(datetime.timestamp(utcnow()))
