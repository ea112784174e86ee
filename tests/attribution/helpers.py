"""Attribution test data: campaigns, contacts, messages and events written straight to the
tables (as the engine, delivery, tracking and ingestion write them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from app.campaigns.models import Campaign
from app.channels.models import Message
from app.core.db import transaction
from app.events.models import Event
from app.sequences.models import Enrollment, SequenceVersion
from tests.fixtures.factories import Factory, stored_contact
from tests.fixtures.rows import campaign_row, stored_sequence
from tests.fixtures.tenants import Tenant

PURCHASE = {"event_type": "purchase", "window": "P7D"}


@dataclass
class Shop:
    """One workspace's attribution world."""

    factory: Factory
    tenant: Tenant

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.tenant.workspace_id

    async def campaign(self, name: str, goal: dict[str, Any] | None = None) -> uuid.UUID:
        async with transaction(self.factory) as session:
            version = await stored_sequence(session, self.workspace_id, f"{name} flow")
            campaign = campaign_row(
                self.workspace_id,
                sequence_id=version.sequence_id,
                name=name,
                goal=goal,
                channels=["email", "sms"],
            )
            session.add(campaign)
            await session.flush()
            return campaign.id

    async def contact(self) -> uuid.UUID:
        email = f"{uuid.uuid4().hex[:10]}@acme.example"
        return await stored_contact(self.factory, self.tenant, email=email)

    async def touch(
        self,
        campaign_id: uuid.UUID,
        contact_id: uuid.UUID,
        *,
        sent: datetime,
        delivered: datetime | None = None,
        clicked: datetime | None = None,
        step_key: str = "hello",
        variant: str | None = None,
        channel: str = "email",
        workspace_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """A message of the campaign (one enrollment each), sent and maybe delivered/clicked."""
        workspace = workspace_id or self.workspace_id
        async with transaction(self.factory) as session:
            campaign = await session.get_one(Campaign, campaign_id)
            assert campaign.sequence_id is not None
            version_id = await session.scalar(
                select(SequenceVersion.id).where(
                    SequenceVersion.sequence_id == campaign.sequence_id
                )
            )
            enrollment = Enrollment(
                workspace_id=workspace,
                sequence_id=campaign.sequence_id,
                sequence_version_id=version_id,
                contact_id=contact_id,
                campaign_id=campaign_id,
                source="campaign",
                state="completed",
                step_key=None,
                step_visit=1,
                step_entered_at=sent,
                started_at=sent,
                finished_at=sent,
                updated_at=sent,
            )
            session.add(enrollment)
            await session.flush()
            status = "delivered" if delivered else "sent"
            message = Message(
                workspace_id=workspace,
                enrollment_id=enrollment.id,
                contact_id=contact_id,
                sequence_id=campaign.sequence_id,
                campaign_id=campaign_id,
                step_key=step_key,
                visit=1,
                channel=channel,
                variant=variant,
                recipient="x@acme.example",
                content={},
                status=status,
                attempts=1,
                due_at=sent,
                created_at=sent,
                sent_at=sent,
                delivered_at=delivered,
                first_clicked_at=clicked,
                updated_at=sent,
            )
            session.add(message)
            await session.flush()
            return message.id

    async def event(
        self, contact_id: uuid.UUID, type_: str, at: datetime, revenue: str | None = None
    ) -> uuid.UUID:
        async with transaction(self.factory) as session:
            event = Event(
                workspace_id=self.workspace_id,
                contact_id=contact_id,
                type=type_,
                properties={},
                revenue=None if revenue is None else Decimal(revenue),
                occurred_at=at,
                received_at=at,
            )
            session.add(event)
            await session.flush()
            return event.id


async def report(client: httpx.AsyncClient, tenant: Tenant, **params: str) -> dict[str, Any]:
    response = await client.get("/v1/attribution", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def credit(body: dict[str, Any], *keys: str) -> dict[tuple[Any, ...], tuple[Decimal, Decimal, int]]:
    """Groups keyed by the given fields -> (conversions, revenue, touches), as Decimals."""
    return {
        tuple(group[key] for key in keys): (
            Decimal(group["conversions"]),
            Decimal(group["revenue"]),
            group["touches"],
        )
        for group in body["groups"]
    }
