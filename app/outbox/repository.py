"""The outbox write: who subscribes, and the set-wise inserts of events and deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.outbox.models import WebhookDelivery, WebhookEndpoint, WebhookEvent


async def subscribed_endpoints(
    session: AsyncSession,
    workspace_ids: Collection[uuid.UUID],
) -> dict[uuid.UUID, list[tuple[uuid.UUID, list[str]]]]:
    """Enabled endpoints of these workspaces with their filters, by workspace."""
    statement = select(
        WebhookEndpoint.workspace_id, WebhookEndpoint.id, WebhookEndpoint.event_types
    ).where(WebhookEndpoint.workspace_id.in_(list(workspace_ids)), WebhookEndpoint.enabled)
    found: dict[uuid.UUID, list[tuple[uuid.UUID, list[str]]]] = {}
    for workspace_id, endpoint_id, filters in (await session.execute(statement)).all():
        found.setdefault(workspace_id, []).append((endpoint_id, list(filters)))
    return found


async def insert_outbox(
    session: AsyncSession,
    events: Sequence[dict[str, Any]],
    deliveries: Sequence[dict[str, Any]],
) -> None:
    """Core executemany inserts: no ORM objects for what may be thousands of rows."""
    if events:
        await session.execute(insert(WebhookEvent), list(events))
    if deliveries:
        await session.execute(insert(WebhookDelivery), list(deliveries))
