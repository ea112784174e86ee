"""The delivery statements on the send outbox (`messages`): claim, record outcomes, expire
stale leases, find due channels. Set-wise: one statement per outcome kind per batch, arrays
bound as parameters.

These run for the worker across workspaces: a message id is the unit of work, and the ids
come from our own engine or scan, never from a request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.models import MESSAGE_CHANNELS as CHANNELS

# What a settled message's webhook event needs, returned by the statements that settle it.
_FACTS = """m.id, m.workspace_id, m.contact_id, m.enrollment_id, m.sequence_id, m.campaign_id,
        m.step_key, m.channel, m.variant, m.error, m.status, m.visit"""


@dataclass(frozen=True)
class Leased:
    id: uuid.UUID
    workspace_id: uuid.UUID
    channel: str
    provider: str
    recipient: str | None
    content: dict[str, Any]
    sequence_id: uuid.UUID
    attempts: int


@dataclass(frozen=True)
class Settled:
    """A message that reached `sent`, `failed` or `unknown` (the `message.*` payload)."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    contact_id: uuid.UUID
    enrollment_id: uuid.UUID
    sequence_id: uuid.UUID
    campaign_id: uuid.UUID | None
    step_key: str
    channel: str
    variant: str | None
    error: str | None
    status: str
    visit: int


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


async def claim(
    session: AsyncSession,
    channel: str,
    provider: str,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int = 1,
) -> list[Leased]:
    """queued -> sending for the oldest due message(s) of `channel` (FIFO by due time), right
    before they are handed to `provider`. SKIP LOCKED: concurrent claimers each get other
    rows, never the same one. The provider is fixed here, so the lease scan knows whether a
    stale send was SMTP (unknowable) or idempotent HTTP. `next_attempt_at` becomes the end
    of the lease: a send not recorded by then is presumed lost with its worker."""
    rows = await session.execute(
        text(
            """
            UPDATE messages AS m SET status = 'sending', next_attempt_at = :lease_until,
                provider = :provider, offered_at = :now, updated_at = :now
            WHERE m.id IN (
                SELECT id FROM messages
                WHERE status = 'queued' AND channel = :channel AND next_attempt_at <= :now
                ORDER BY next_attempt_at, id LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            RETURNING m.id, m.workspace_id, m.channel, m.provider, m.recipient, m.content,
                      m.sequence_id, m.attempts
            """
        ),
        {
            "channel": channel,
            "provider": provider,
            "now": now,
            "lease_until": lease_until,
            "limit": limit,
        },
    )
    return [Leased(*row) for row in rows.all()]


async def mark_sent(
    session: AsyncSession,
    rows: Sequence[tuple[uuid.UUID, str | None, dict[str, Any] | None, datetime]],
    now: datetime,
) -> list[Settled]:
    """`sent`, each with its own `sent_at`: the instant its provider accepted it."""
    if not rows:
        return []
    ids, provider_ids, responses, sent_at = zip(*rows, strict=True)
    result = await session.execute(
        text(
            """
            UPDATE messages AS m SET status = 'sent', sent_at = v.sent_at,
                attempts = m.attempts + 1,
                provider_message_id = v.provider_id, response = CAST(v.response AS jsonb),
                next_attempt_at = NULL, error = NULL, updated_at = :now
            FROM unnest(CAST(:ids AS uuid[]), CAST(:provider_ids AS text[]),
                        CAST(:responses AS text[]), CAST(:sent_at AS timestamptz[]))
                 AS v(id, provider_id, response, sent_at)
            WHERE m.id = v.id AND m.status = 'sending'
            RETURNING """
            + _FACTS
        ),
        {
            "ids": list(ids),
            "provider_ids": list(provider_ids),
            "responses": [_json(r) for r in responses],
            "sent_at": list(sent_at),
            "now": now,
        },
    )
    return [Settled(*row) for row in result.all()]


async def mark_retry(
    session: AsyncSession,
    rows: Sequence[tuple[uuid.UUID, datetime, str, dict[str, Any] | None]],
    now: datetime,
    max_attempts: int,
) -> list[Settled]:
    """Back to queued at each row's retry time, or `failed` once attempts are spent.
    Returns the messages that failed."""
    if not rows:
        return []
    ids, retry_at, errors, responses = zip(*rows, strict=True)
    result = await session.execute(
        text(
            """
            UPDATE messages AS m SET attempts = m.attempts + 1,
                status = CASE WHEN m.attempts + 1 >= :max THEN 'failed' ELSE 'queued' END,
                next_attempt_at = CASE WHEN m.attempts + 1 >= :max THEN NULL ELSE v.retry_at END,
                failed_at = CASE WHEN m.attempts + 1 >= :max
                            THEN CAST(:now AS timestamptz) END,
                error = v.error, response = CAST(v.response AS jsonb), updated_at = :now
            FROM unnest(CAST(:ids AS uuid[]), CAST(:retry_at AS timestamptz[]),
                        CAST(:errors AS text[]), CAST(:responses AS text[]))
                 AS v(id, retry_at, error, response)
            WHERE m.id = v.id AND m.status = 'sending'
            RETURNING """
            + _FACTS
        ),
        {
            "ids": list(ids),
            "retry_at": list(retry_at),
            "errors": list(errors),
            "responses": [_json(r) for r in responses],
            "now": now,
            "max": max_attempts,
        },
    )
    return [Settled(*row) for row in result.all() if row.status == "failed"]


async def mark_final(
    session: AsyncSession,
    status: str,
    rows: Sequence[tuple[uuid.UUID, str, dict[str, Any] | None]],
    now: datetime,
) -> list[Settled]:
    """`failed` (permanent error) or `unknown` (SMTP outcome lost): never retried."""
    if not rows:
        return []
    ids, errors, responses = zip(*rows, strict=True)
    result = await session.execute(
        text(
            """
            UPDATE messages AS m SET status = CAST(:status AS text), attempts = m.attempts + 1,
                failed_at = CASE WHEN CAST(:status AS text) = 'failed'
                            THEN CAST(:now AS timestamptz) ELSE m.failed_at END,
                next_attempt_at = NULL, error = v.error,
                response = CAST(v.response AS jsonb), updated_at = :now
            FROM unnest(CAST(:ids AS uuid[]), CAST(:errors AS text[]),
                        CAST(:responses AS text[])) AS v(id, error, response)
            WHERE m.id = v.id AND m.status = 'sending'
            RETURNING """
            + _FACTS
        ),
        {
            "status": status,
            "ids": list(ids),
            "errors": list(errors),
            "responses": [_json(r) for r in responses],
            "now": now,
        },
    )
    return [Settled(*row) for row in result.all()]


async def due_channels(session: AsyncSession, now: datetime) -> list[str]:
    """Channels with queued messages due now (lost deliveries, due retries)."""
    rows = await session.execute(
        text(
            """
            SELECT c.channel FROM unnest(CAST(:channels AS text[])) AS c(channel)
            WHERE EXISTS (SELECT 1 FROM messages
                          WHERE status = 'queued' AND channel = c.channel
                            AND next_attempt_at <= :now)
            """
        ),
        {"channels": list(CHANNELS), "now": now},
    )
    return [row[0] for row in rows.all()]


async def next_due(session: AsyncSession, channel: str) -> datetime | None:
    """When the channel's earliest queued message falls due (a retry's backoff)."""
    rows = await session.execute(
        text(
            """
            SELECT next_attempt_at FROM messages
            WHERE status = 'queued' AND channel = :channel
            ORDER BY next_attempt_at LIMIT 1
            """
        ),
        {"channel": channel},
    )
    return rows.scalar_one_or_none()


async def expire_leases(
    session: AsyncSession, now: datetime, limit: int, max_attempts: int
) -> list[Settled]:
    """Stale `sending` rows (the worker died mid-send): SMTP -> `unknown` (the server may
    have accepted it; never resent), idempotent providers -> `queued` now (the receiver
    deduplicates by message id), counted as an attempt so a message that kills its worker
    every time ends `failed` after `max_attempts`. Returns the rows (the caller announces
    the ones that end `unknown` or `failed`: `app/channels/settled.py`).

    A message is `sending` only from the moment it is handed to its provider (the claim),
    so for SMTP a stale lease means its DATA may have been in flight."""
    rows = await session.execute(
        text(
            """
            UPDATE messages AS m SET
                status = CASE WHEN m.provider = 'smtp' THEN 'unknown'
                              WHEN m.attempts + 1 >= :max THEN 'failed'
                              ELSE 'queued' END,
                attempts = CASE WHEN m.provider = 'smtp' THEN m.attempts
                                ELSE m.attempts + 1 END,
                next_attempt_at = CASE WHEN m.provider = 'smtp' OR m.attempts + 1 >= :max
                                  THEN NULL ELSE CAST(:now AS timestamptz) END,
                failed_at = CASE WHEN m.provider <> 'smtp' AND m.attempts + 1 >= :max
                            THEN CAST(:now AS timestamptz) ELSE m.failed_at END,
                error = CASE WHEN m.provider = 'smtp'
                        THEN 'the worker stopped while the message was with the SMTP server '
                             '(DATA in flight, or its answer not yet recorded): '
                             'the server may have accepted it'
                        WHEN m.attempts + 1 >= :max
                        THEN 'the send was interrupted on every attempt'
                        ELSE m.error END,
                updated_at = :now
            WHERE m.id IN (
                SELECT id FROM messages
                WHERE status = 'sending' AND next_attempt_at <= :now
                ORDER BY next_attempt_at LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            RETURNING """
            + _FACTS
        ),
        {"now": now, "limit": limit, "max": max_attempts},
    )
    return [Settled(*row) for row in rows.all()]


async def channels_of(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[str]:
    """The channels these messages are queued on."""
    rows = await session.execute(
        text(
            "SELECT DISTINCT channel FROM messages "
            "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'queued'"
        ),
        {"ids": list(ids)},
    )
    return sorted(row[0] for row in rows.all())
