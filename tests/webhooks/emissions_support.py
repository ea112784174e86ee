"""Helpers for the emission tests: endpoints stored directly (the endpoints API has its own
tests), and readers that check every stored event against the catalogue."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.core.db import transaction
from app.core.signing import new_secret
from app.outbox.catalogue import CATALOGUE
from app.outbox.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.fixtures.tenants import Tenant

Factory = async_sessionmaker[AsyncSession]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


async def subscribe(
    factory: Factory, tenant: Tenant, event_types: list[str] | None = None, *, enabled: bool = True
) -> uuid.UUID:
    now = utcnow()
    async with transaction(factory) as session:
        endpoint = WebhookEndpoint(
            workspace_id=tenant.workspace_id,
            # Nothing listens there: the dispatcher's attempts fail fast (its own tests cover
            # delivery); these tests look at the outbox.
            url="http://127.0.0.1:9/herald",
            event_types=event_types or ["*"],
            secret=new_secret(),
            enabled=enabled,
            created_at=now,
            updated_at=now,
        )
        session.add(endpoint)
        await session.flush()
        return endpoint.id


def checked(event: WebhookEvent) -> dict[str, Any]:
    """The event's `data`, after checking the envelope against the catalogue."""
    payload = event.payload
    model = CATALOGUE[event.type]
    assert payload["type"] == event.type
    assert payload["version"] == model.VERSION
    assert TIMESTAMP.match(payload["timestamp"]), payload["timestamp"]
    stamped = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
    assert stamped == event.occurred_at
    model.model_validate(payload["data"])
    data: dict[str, Any] = payload["data"]
    return data


async def events(
    factory: Factory, tenant: Tenant, prefix: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the workspace's events in emission order, every one checked."""
    async with factory() as session:
        statement = select(WebhookEvent).where(WebhookEvent.workspace_id == tenant.workspace_id)
        if prefix is not None:
            statement = statement.where(WebhookEvent.type.startswith(prefix))
        rows = (await session.execute(statement.order_by(WebhookEvent.id))).scalars().all()
    return [(row.type, checked(row)) for row in rows]


def of_type(found: list[tuple[str, dict[str, Any]]], event_type: str) -> list[dict[str, Any]]:
    return [data for kind, data in found if kind == event_type]


async def count(factory: Factory, model: type[Any] = WebhookEvent) -> int:
    async with factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def delivered_types(factory: Factory, endpoint_id: uuid.UUID) -> list[str]:
    async with factory() as session:
        result = await session.execute(
            select(WebhookDelivery.event_type)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.event_type)
        )
        return list(result.scalars())
