"""Reports test data: campaigns from the metrics test world (rows written as the engine,
delivery and ingestion write them), with budget, schedule and launch times set on the row,
spend recorded through the API, and sent messages and goal events with known times."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import update

from app.campaigns.models import Campaign
from app.core.db import transaction
from app.sequences.models import SequenceVersion
from tests.fixtures.factories import Factory
from tests.fixtures.metrics import World
from tests.fixtures.tenants import Tenant

DEFINITION: dict[str, Any] = {
    "steps": [
        {
            "key": "hello",
            "type": "send",
            "channel": "email",
            "variants": [
                {"key": "a", "template_id": str(uuid.uuid4()), "weight": 1},
                {"key": "b", "template_id": str(uuid.uuid4()), "weight": 1},
            ],
        }
    ]
}


async def shop(factory: Factory, tenant: Tenant, segments: int = 0, **campaign: Any) -> World:
    """A campaign (goal: purchase within P7D) with the given column values, on a sequence
    whose one send step `hello` has variants `a` (control) and `b`."""
    world = await World(factory, tenant).setup(segments=segments)
    async with transaction(factory) as session:
        await session.execute(
            update(SequenceVersion)
            .where(SequenceVersion.id == world.version_id)
            .values(definition=DEFINITION)
        )
        if campaign:
            await session.execute(
                update(Campaign).where(Campaign.id == world.campaign_id).values(**campaign)
            )
    return world


async def sale(
    world: World,
    *,
    sent: datetime,
    bought: datetime | None = None,
    revenue: str | None = None,
    channel: str = "email",
    step_key: str = "hello",
    variant: str | None = None,
    segment: int | None = None,
) -> uuid.UUID:
    """A contact sent one message of the campaign at `sent`, buying at `bought`."""
    contact = await world.contact(segment)
    enrollment = await world.enroll(contact, sent)
    message = await world.message(
        enrollment, contact, sent, channel=channel, step_key=step_key, variant=variant
    )
    await world.set_message(message, status="sent", sent_at=sent)
    if bought is not None:
        await world.event(contact, "purchase", bought, revenue=revenue)
    return contact


async def record_spend(
    client: httpx.AsyncClient,
    tenant: Tenant,
    campaign_id: uuid.UUID,
    amount: str,
    currency: str,
    channel: str | None = None,
) -> None:
    body: dict[str, Any] = {"amount": amount, "currency": currency, "date": "2030-01-02"}
    if channel is not None:
        body["channel"] = channel
    response = await client.post(
        f"/v1/campaigns/{campaign_id}/spend", json=body, headers=tenant.headers
    )
    assert response.status_code == 201, response.text


async def get(
    client: httpx.AsyncClient, tenant: Tenant, path: str, **params: str
) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)
