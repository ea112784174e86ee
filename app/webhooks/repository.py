"""Queries of the webhooks API and the outbox write (delivery queries: dispatch/repository.py)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent


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


class EndpointRepository(WorkspaceRepository[WebhookEndpoint]):
    model = WebhookEndpoint
    noun = "webhook endpoint"


@dataclass(frozen=True)
class DeliveryFilters:
    status: str | None = None
    event_type: str | None = None

    def conditions(self) -> list[Any]:
        found: list[Any] = []
        if self.status is not None:
            found.append(WebhookDelivery.status == self.status)
        if self.event_type is not None:
            found.append(WebhookDelivery.event_type == self.event_type)
        return found


class DeliveryRepository(WorkspaceRepository[WebhookDelivery]):
    model = WebhookDelivery
    noun = "webhook delivery"

    async def of_endpoint(
        self, endpoint_id: uuid.UUID, params: PageParams, filters: DeliveryFilters
    ) -> PageResult[WebhookDelivery]:
        return await self.page(
            params, WebhookDelivery.endpoint_id == endpoint_id, *filters.conditions()
        )


class AttemptRepository(WorkspaceRepository[WebhookAttempt]):
    model = WebhookAttempt
    noun = "webhook attempt"

    async def of_delivery(
        self, delivery_id: uuid.UUID, params: PageParams
    ) -> PageResult[WebhookAttempt]:
        return await self.page(params, WebhookAttempt.delivery_id == delivery_id)

    async def of_endpoint(
        self, endpoint_id: uuid.UUID, params: PageParams
    ) -> PageResult[WebhookAttempt]:
        return await self.page(params, WebhookAttempt.endpoint_id == endpoint_id)


class EventRepository(WorkspaceRepository[WebhookEvent]):
    model = WebhookEvent
    noun = "webhook event"
