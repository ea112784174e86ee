"""The delivery statements on the outbox (`messages`). Set-wise: one statement per outcome
kind per batch, arrays bound as parameters.

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


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


async def lease(
    session: AsyncSession,
    ids: Sequence[uuid.UUID],
    *,
    now: datetime,
    lease_until: datetime,
    email_provider: str,
    sms_provider: str,
) -> list[Leased]:
    """queued -> sending, only for rows still queued and due: a concurrent or duplicate
    delivery of the same ids gets nothing. The provider is fixed here, so the lease scan
    knows whether a stale send was SMTP (unknowable) or idempotent HTTP."""
    rows = await session.execute(
        text(
            """
            UPDATE messages SET status = 'sending', next_attempt_at = :lease_until,
                provider = CASE channel WHEN 'email' THEN :email WHEN 'sms' THEN :sms
                                        ELSE 'webhook' END,
                updated_at = :now
            WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'queued'
              AND next_attempt_at <= :now
            RETURNING id, workspace_id, channel, provider, recipient, content, sequence_id,
                      attempts
            """
        ),
        {
            "ids": list(ids),
            "now": now,
            "lease_until": lease_until,
            "email": email_provider,
            "sms": sms_provider,
        },
    )
    return [Leased(*row) for row in rows.all()]


async def signing_secrets(
    session: AsyncSession, sequence_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    if not sequence_ids:
        return {}
    rows = await session.execute(
        text("SELECT id, signing_secret FROM sequences WHERE id = ANY(CAST(:ids AS uuid[]))"),
        {"ids": list(set(sequence_ids))},
    )
    return {row[0]: row[1] for row in rows.all()}


async def mark_sent(
    session: AsyncSession,
    rows: Sequence[tuple[uuid.UUID, str | None, dict[str, Any] | None]],
    now: datetime,
) -> None:
    if not rows:
        return
    ids, provider_ids, responses = zip(*rows, strict=True)
    await session.execute(
        text(
            """
            UPDATE messages AS m SET status = 'sent', sent_at = :now, attempts = m.attempts + 1,
                provider_message_id = v.provider_id, response = CAST(v.response AS jsonb),
                next_attempt_at = NULL, error = NULL, updated_at = :now
            FROM unnest(CAST(:ids AS uuid[]), CAST(:provider_ids AS text[]),
                        CAST(:responses AS text[])) AS v(id, provider_id, response)
            WHERE m.id = v.id AND m.status = 'sending'
            """
        ),
        {
            "ids": list(ids),
            "provider_ids": list(provider_ids),
            "responses": [_json(r) for r in responses],
            "now": now,
        },
    )


async def mark_retry(
    session: AsyncSession,
    rows: Sequence[tuple[uuid.UUID, datetime, str, dict[str, Any] | None]],
    now: datetime,
    max_attempts: int,
) -> list[uuid.UUID]:
    """Back to queued at each row's retry time, or `failed` once attempts are spent.
    Returns the ids that failed."""
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
            RETURNING m.id, m.status
            """
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
    return [row[0] for row in result.all() if row[1] == "failed"]


async def mark_final(
    session: AsyncSession,
    status: str,
    rows: Sequence[tuple[uuid.UUID, str, dict[str, Any] | None]],
    now: datetime,
) -> list[uuid.UUID]:
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
            RETURNING m.id
            """
        ),
        {
            "status": status,
            "ids": list(ids),
            "errors": list(errors),
            "responses": [_json(r) for r in responses],
            "now": now,
        },
    )
    return [row[0] for row in result.all()]


async def release(
    session: AsyncSession, ids: Sequence[uuid.UUID], retry_at: datetime, now: datetime
) -> None:
    """Over the rate limit: back to queued for the next window, not counted as an attempt."""
    if not ids:
        return
    await session.execute(
        text(
            """
            UPDATE messages SET status = 'queued', next_attempt_at = :retry_at, updated_at = :now
            WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'sending'
            """
        ),
        {"ids": list(ids), "retry_at": retry_at, "now": now},
    )


async def enrollments_failing_on_send_failure(
    session: AsyncSession, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Enrollments (by workspace) of these messages whose sequence version says
    `on_send_failure: fail`."""
    if not message_ids:
        return {}
    rows = await session.execute(
        text(
            """
            SELECT m.workspace_id, m.enrollment_id
            FROM messages m
            JOIN enrollments e ON e.id = m.enrollment_id
            JOIN sequence_versions v ON v.id = e.sequence_version_id
            WHERE m.id = ANY(CAST(:ids AS uuid[]))
              AND v.definition -> 'settings' ->> 'on_send_failure' = 'fail'
            """
        ),
        {"ids": list(message_ids)},
    )
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    for workspace_id, enrollment_id in rows.all():
        found.setdefault(workspace_id, []).append(enrollment_id)
    return found


async def due_ids(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Queued messages whose attempt is due (lost deliveries, retries, rate-limited)."""
    rows = await session.execute(
        text(
            """
            SELECT id FROM messages
            WHERE status = 'queued' AND next_attempt_at <= :now
            ORDER BY next_attempt_at LIMIT :limit
            """
        ),
        {"now": now, "limit": limit},
    )
    return [row[0] for row in rows.all()]


async def expire_leases(
    session: AsyncSession, now: datetime, limit: int, max_attempts: int
) -> list[tuple[uuid.UUID, str, str]]:
    """Stale `sending` rows (the worker died mid-send): SMTP -> `unknown` (the server may
    have accepted it; never resent), idempotent providers -> `queued` now (the receiver
    deduplicates by message id), counted as an attempt so a message that kills its worker
    every time ends `failed` after `max_attempts`. Returns (id, new status, channel)."""
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
                        THEN 'the send was interrupted: the server may have accepted it'
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
            RETURNING m.id, m.status, m.channel
            """
        ),
        {"now": now, "limit": limit, "max": max_attempts},
    )
    return [(row[0], row[1], row[2]) for row in rows.all()]
