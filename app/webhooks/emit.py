"""Emitting webhook events: the outbox write, in the caller's transaction.

Every domain calls `emit` / `emit_many` in the same session (and so the same transaction)
as the change the event describes: a rolled-back change emits nothing, a committed one is
always delivered. Only events some enabled endpoint subscribes to are stored, with one
delivery row per subscribed endpoint, and the endpoints' delivery jobs are enqueued after
the commit. A workspace without endpoints pays one indexed query per call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.ids import new_id
from app.webhooks import repository
from app.webhooks.catalogue import EventData, envelope, patterns_matching
from app.worker.queue import enqueue

DELIVER_JOB = "deliver_webhooks"


@dataclass(frozen=True)
class Emission:
    workspace_id: uuid.UUID
    data: EventData
    occurred_at: datetime | None = None  # defaults to now (the one clock)


async def emit(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    data: EventData,
    *,
    occurred_at: datetime | None = None,
) -> int:
    """Emit one event; returns how many endpoints will receive it."""
    return await emit_many(session, [Emission(workspace_id, data, occurred_at)])


async def emit_many(
    session: AsyncSession,
    emissions: Sequence[Emission],
    *,
    only_endpoint: uuid.UUID | None = None,
) -> int:
    """Emit events set-wise (one query for the subscriptions, two inserts); returns the
    number of deliveries created. `only_endpoint` targets one endpoint (test sends)."""
    if not emissions:
        return 0
    subscribers = await repository.subscribed_endpoints(
        session, {e.workspace_id for e in emissions}, only_endpoint
    )
    if not subscribers:
        return 0
    now = utcnow()
    events: list[dict[str, object]] = []
    deliveries: list[dict[str, object]] = []
    for emission in emissions:
        wanted = set(patterns_matching(emission.data.TYPE))
        targets = [
            endpoint_id
            for endpoint_id, filters in subscribers.get(emission.workspace_id, [])
            if wanted.intersection(filters)
        ]
        if not targets:
            continue
        event_id = new_id()
        occurred_at = emission.occurred_at or now
        events.append(
            {
                "id": event_id,
                "workspace_id": emission.workspace_id,
                "type": emission.data.TYPE,
                "payload": envelope(emission.data, occurred_at),
                "occurred_at": occurred_at,
            }
        )
        deliveries.extend(
            {
                "id": new_id(),
                "workspace_id": emission.workspace_id,
                "endpoint_id": endpoint_id,
                "event_id": event_id,
                "event_type": emission.data.TYPE,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for endpoint_id in targets
        )
    await repository.insert_outbox(session, events, deliveries)
    for endpoint_id in sorted({d["endpoint_id"] for d in deliveries}, key=str):
        enqueue_delivery(session, endpoint_id)  # type: ignore[arg-type]
    return len(deliveries)


def enqueue_delivery(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    """Wake the endpoint's delivery job after the commit (one job per endpoint at a time)."""
    enqueue(session, DELIVER_JOB, str(endpoint_id), job_key=(endpoint_id,))
