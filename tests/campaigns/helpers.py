"""Helpers for the campaigns API tests: a launchable world built through the real API
(contacts, a static segment, a published email sequence), and status forcing for states a
test cannot reach on its own."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select, update

from app.audit.models import AuditEvent
from app.campaigns.models import Campaign
from app.core.db import transaction
from tests.fixtures.tenants import Tenant
from tests.sequences.engine import support
from tests.sequences.engine.support import Factory

START = "2030-01-01T09:00:00Z"
END = "2030-01-31T09:00:00Z"


async def segment(client: httpx.AsyncClient, tenant: Tenant, contact_ids: list[str]) -> str:
    response = await client.post(
        "/v1/segments",
        json={"name": f"Seg {uuid.uuid4().hex[:6]}", "kind": "static"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    segment_id: str = response.json()["id"]
    if contact_ids:
        added = await client.post(
            f"/v1/segments/{segment_id}/members",
            json={"contact_ids": contact_ids},
            headers=tenant.headers,
        )
        assert added.status_code == 200, added.text
    return segment_id


async def sequence(client: httpx.AsyncClient, tenant: Tenant, channel: str = "email") -> str:
    if channel == "email":
        template = await support.email_template(client, tenant, "Hello")
    else:
        template = await support.template(client, tenant, "sms", {"text": "Hi"})
    steps = [{"key": "hello", "type": "send", "channel": channel, "template_id": template}]
    return await support.published_sequence(client, tenant, {"steps": steps})


async def world(client: httpx.AsyncClient, tenant: Tenant, size: int = 2) -> dict[str, Any]:
    """A valid campaign body over `size` contacts (a one_off email campaign)."""
    contacts = [
        await support.contact(client, tenant, email=f"c{i}-{uuid.uuid4().hex[:6]}@acme.example")
        for i in range(size)
    ]
    return {
        "name": "Winter sale",
        "channels": ["email"],
        "include_segments": [await segment(client, tenant, contacts)],
        "sequence_id": await sequence(client, tenant),
        "type": "one_off",
        "timezone": "Europe/Paris",
        "start_at": START,
        "end_at": END,
        "budget": {"amount": "1000.00", "currency": "EUR"},
    }


async def create(client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/campaigns", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def force_status(factory: Factory, campaign_id: str, status: str) -> None:
    """Put a campaign in `status` directly (states a test cannot reach alone)."""
    async with transaction(factory) as session:
        await session.execute(
            update(Campaign).where(Campaign.id == uuid.UUID(campaign_id)).values(status=status)
        )


async def actions(factory: Factory, campaign_id: str) -> list[str]:
    """The campaign domain's audit actions on this campaign, oldest first (key-use rows of
    the audit middleware left out)."""
    async with factory() as session:
        rows = await session.execute(
            select(AuditEvent.action)
            .where(
                AuditEvent.entity_id == uuid.UUID(campaign_id),
                AuditEvent.action.startswith("campaign."),
            )
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        )
        return list(rows.scalars())


async def audit_rows(factory: Factory, campaign_id: str, action: str) -> list[AuditEvent]:
    async with factory() as session:
        rows = await session.execute(
            select(AuditEvent)
            .where(AuditEvent.entity_id == uuid.UUID(campaign_id), AuditEvent.action == action)
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        )
        return list(rows.scalars())
