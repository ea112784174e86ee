"""The delivery statements: lease, record, endpoint health, replay, dispatch scan, purge.

The worker runs across workspaces: an endpoint id (from our own scan or emit) is the unit of
work, and every statement is bounded by it. Set-wise: arrays bound as parameters, one
statement per kind of change per round.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import rowcount
from app.outbox.models import WebhookAttempt, WebhookEndpoint


@dataclass(frozen=True)
class Leased:
    id: uuid.UUID
    workspace_id: uuid.UUID
    event_id: uuid.UUID
    attempts: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """A delivery's state after one attempt."""

    id: uuid.UUID
    status: str  # pending (retry), succeeded, failed
    next_attempt_at: datetime | None
    status_code: int | None
    error: str | None
    completed_at: datetime | None


async def endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
    return await session.get(WebhookEndpoint, endpoint_id, populate_existing=True)


async def lease_due(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> list[Leased]:
    """Take up to `limit` due deliveries of the endpoint whose lease is free or expired,
    oldest due first; rows another job holds are skipped, not waited for."""
    rows = await session.execute(
        text(
            """
            WITH due AS (
                SELECT id FROM webhook_deliveries
                WHERE endpoint_id = :endpoint AND status = 'pending'
                  AND next_attempt_at <= :now
                  AND (lease_until IS NULL OR lease_until <= :now)
                ORDER BY next_attempt_at, id
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            UPDATE webhook_deliveries AS d SET lease_until = :lease_until, updated_at = :now
            FROM due, webhook_events AS e
            WHERE d.id = due.id AND e.id = d.event_id
            RETURNING d.id, d.workspace_id, d.event_id, d.attempts, e.payload
            """
        ),
        {"endpoint": endpoint_id, "now": now, "lease_until": lease_until, "limit": limit},
    )
    leased = [Leased(*row) for row in rows.all()]
    leased.sort(key=lambda row: row.id)
    return leased


async def release(
    session: AsyncSession,
    ids: Sequence[uuid.UUID],
    *,
    lease_until: datetime,
    next_attempt_at: datetime,
    now: datetime,
) -> None:
    """Hand leased rows back unattempted (rate limit, time budget): not an attempt."""
    if not ids:
        return
    await session.execute(
        text(
            """
            UPDATE webhook_deliveries SET lease_until = NULL, next_attempt_at = :next,
                updated_at = :now
            WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'
              AND lease_until = :lease_until
            """
        ),
        {"ids": list(ids), "next": next_attempt_at, "now": now, "lease_until": lease_until},
    )


async def insert_attempts(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(WebhookAttempt), list(rows))


async def finish(
    session: AsyncSession,
    rows: Sequence[Finished],
    *,
    lease_until: datetime | None,
    now: datetime,
) -> None:
    """Record one attempt's effect on each delivery. With a lease, only rows still holding
    it change (a row whose lease expired and was re-leased belongs to the newer job)."""
    if not rows:
        return
    lease_check = "AND d.lease_until = :lease_until" if lease_until is not None else ""
    await session.execute(
        text(
            f"""
            UPDATE webhook_deliveries AS d SET attempts = d.attempts + 1, status = v.status,
                next_attempt_at = v.next_at, last_status_code = v.code, last_error = v.error,
                completed_at = v.completed_at, lease_until = NULL, updated_at = :now
            FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]),
                        CAST(:next_at AS timestamptz[]), CAST(:codes AS int[]),
                        CAST(:errors AS text[]), CAST(:completed AS timestamptz[]))
                 AS v(id, status, next_at, code, error, completed_at)
            WHERE d.id = v.id AND d.status = 'pending' {lease_check}
            """
        ),
        {
            "ids": [row.id for row in rows],
            "statuses": [row.status for row in rows],
            "next_at": [row.next_attempt_at for row in rows],
            "codes": [row.status_code for row in rows],
            "errors": [row.error for row in rows],
            "completed": [row.completed_at for row in rows],
            "lease_until": lease_until,
            "now": now,
        },
    )


async def endpoint_succeeded(session: AsyncSession, endpoint_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        text(
            """
            UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = :now
            WHERE id = :id
            """
        ),
        {"id": endpoint_id, "now": now},
    )


async def endpoint_failed(
    session: AsyncSession, endpoint_id: uuid.UUID, now: datetime
) -> datetime | None:
    """Start the failing run if none is open; returns when it started."""
    row = await session.execute(
        text(
            """
            UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, :now)
            WHERE id = :id RETURNING failing_since
            """
        ),
        {"id": endpoint_id, "now": now},
    )
    found = row.scalar_one_or_none()
    return found if isinstance(found, datetime) else None


async def disable(
    session: AsyncSession, endpoint_id: uuid.UUID, reason: str, now: datetime
) -> WebhookEndpoint | None:
    """enabled -> disabled; None when it already was (so it is announced once)."""
    row = await session.execute(
        text(
            """
            UPDATE webhook_endpoints SET enabled = false, disabled_reason = :reason,
                disabled_at = :now, version = version + 1, updated_at = :now
            WHERE id = :id AND enabled
            RETURNING id
            """
        ),
        {"id": endpoint_id, "reason": reason, "now": now},
    )
    if row.scalar_one_or_none() is None:
        return None
    return await endpoint(session, endpoint_id)


async def due_endpoints(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Enabled endpoints with at least one due delivery whose lease is free or expired."""
    rows = await session.execute(
        text(
            """
            SELECT e.id FROM webhook_endpoints AS e
            WHERE e.enabled AND EXISTS (
                SELECT 1 FROM webhook_deliveries AS d
                WHERE d.endpoint_id = e.id AND d.status = 'pending'
                  AND d.next_attempt_at <= :now
                  AND (d.lease_until IS NULL OR d.lease_until <= :now)
            )
            ORDER BY e.id
            LIMIT :limit
            """
        ),
        {"now": now, "limit": limit},
    )
    return list(rows.scalars().all())


async def has_due(session: AsyncSession, endpoint_id: uuid.UUID, now: datetime) -> bool:
    row = await session.execute(
        text(
            """
            SELECT EXISTS (
                SELECT 1 FROM webhook_deliveries
                WHERE endpoint_id = :endpoint AND status = 'pending'
                  AND next_attempt_at <= :now
                  AND (lease_until IS NULL OR lease_until <= :now)
            )
            """
        ),
        {"endpoint": endpoint_id, "now": now},
    )
    return bool(row.scalar_one())


# -- replay ----------------------------------------------------------------------------------

_REQUEUE = """
    status = 'pending', attempts = 0, next_attempt_at = :now, lease_until = NULL,
    completed_at = NULL, updated_at = :now
"""


async def requeue_failed(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    since: datetime,
    now: datetime,
) -> int:
    result = await session.execute(
        text(
            f"""
            UPDATE webhook_deliveries SET {_REQUEUE}
            WHERE workspace_id = :ws AND endpoint_id = :endpoint AND status = 'failed'
              AND completed_at >= :since
            """
        ),
        {"ws": workspace_id, "endpoint": endpoint_id, "since": since, "now": now},
    )
    return rowcount(result)


# -- retention -------------------------------------------------------------------------------


async def purge(session: AsyncSession, cutoff: datetime, limit: int) -> tuple[int, int]:
    """Delete up to `limit` attempts and `limit` events older than `cutoff`; an event is kept
    while any of its deliveries is pending. Returns (attempts, events) deleted."""
    attempts = await session.execute(
        text(
            """
            DELETE FROM webhook_attempts WHERE id IN (
                SELECT id FROM webhook_attempts WHERE attempted_at < :cutoff LIMIT :limit
            )
            """
        ),
        {"cutoff": cutoff, "limit": limit},
    )
    events = await session.execute(
        text(
            """
            DELETE FROM webhook_events WHERE id IN (
                SELECT e.id FROM webhook_events AS e
                WHERE e.occurred_at < :cutoff AND NOT EXISTS (
                    SELECT 1 FROM webhook_deliveries AS d
                    WHERE d.event_id = e.id AND d.status = 'pending'
                )
                LIMIT :limit
            )
            """
        ),
        {"cutoff": cutoff, "limit": limit},
    )
    return (
        rowcount(attempts),
        rowcount(events),
    )


async def event_payload(session: AsyncSession, event_id: uuid.UUID) -> dict[str, Any]:
    row = await session.execute(
        text("SELECT payload FROM webhook_events WHERE id = :id"), {"id": event_id}
    )
    payload: dict[str, Any] = row.scalar_one()
    return payload
