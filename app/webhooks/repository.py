"""Queries of the webhooks API (the outbox write: app/outbox/repository.py; delivery queries:
dispatch/repository.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository
from app.outbox.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent


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
