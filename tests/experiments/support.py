"""Helpers for the experiments tests: a campaign on a sequence whose send step `offer` has
variants `a` (control) and `b`, and messages / goal events stored directly with exactly the
flags a test needs (the engine and tracking have their own tests)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from app.channels.models import Message
from app.contacts.models import Contact
from app.core.db import transaction
from app.core.ids import new_id
from app.events.models import Event
from app.sequences.models import Enrollment, SequenceVersion
from tests.fixtures import factories
from tests.fixtures import launch as ls
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
GOAL = {"event_type": "purchase", "window": "P7D"}


@dataclass
class World:
    tenant: Tenant
    campaign_id: uuid.UUID
    sequence_id: uuid.UUID
    version_id: uuid.UUID


async def variant_sequence(
    client: httpx.AsyncClient, tenant: Tenant, *, wait: str | None = None
) -> str:
    """[wait `wait`,] send `offer` with variants a / b (equal weights), send `plain`."""
    first = await factories.email_template(client, tenant, "Offer A")
    second = await factories.email_template(client, tenant, "Offer B")
    plain = await factories.email_template(client, tenant, "Plain")
    steps: list[dict[str, Any]] = []
    if wait is not None:
        steps.append({"key": "nap", "type": "wait", "duration": wait, "next": "offer"})
    steps += [
        {
            "key": "offer",
            "type": "send",
            "channel": "email",
            "variants": [
                {"key": "a", "template_id": first, "weight": 1},
                {"key": "b", "template_id": second, "weight": 1},
            ],
            "next": "plain",
        },
        {"key": "plain", "type": "send", "channel": "email", "template_id": plain},
    ]
    return await factories.published_sequence(client, tenant, {"steps": steps})


async def world(
    client: httpx.AsyncClient,
    factory: Factory,
    tenant: Tenant,
    *,
    goal: dict[str, str] | None = GOAL,
    include: list[str] | None = None,
    wait: str | None = None,
    status: str = "running",
) -> World:
    sequence_id = await variant_sequence(client, tenant, wait=wait)
    campaign_id = await ls.campaign(
        factory, tenant, sequence_id, include or [], goal=goal, status=status
    )
    async with factory() as session:
        version_id = await session.scalar(
            select(SequenceVersion.id).where(SequenceVersion.sequence_id == uuid.UUID(sequence_id))
        )
    assert version_id is not None
    return World(tenant, campaign_id, uuid.UUID(sequence_id), version_id)


@dataclass
class Send:
    variant: str | None
    opened: bool = False
    clicked: bool = False
    replied: bool = False
    sent: bool = True
    step_key: str = "offer"
    visit: int = 1
    # goal events of the contact, as offsets from the send
    purchases: tuple[timedelta, ...] = ()


async def exposures(
    factory: Factory,
    world: World,
    sends: list[Send],
    *,
    campaign_id: uuid.UUID | None = None,
    contacts: list[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """One contact (and enrollment) per send unless `contacts` names them; returns them."""
    ids: list[uuid.UUID] = []
    campaign = campaign_id or world.campaign_id
    async with transaction(factory) as session:
        for index, send in enumerate(sends):
            if contacts is not None:
                contact_id = contacts[index]
            else:
                contact_id = new_id()
                session.add(
                    Contact(
                        id=contact_id,
                        workspace_id=world.tenant.workspace_id,
                        email=f"x{contact_id.hex}@example.com",
                        attributes={},
                    )
                )
            ids.append(contact_id)
            enrollment_id = new_id()
            session.add(
                Enrollment(
                    id=enrollment_id,
                    workspace_id=world.tenant.workspace_id,
                    sequence_id=world.sequence_id,
                    sequence_version_id=world.version_id,
                    contact_id=contact_id,
                    campaign_id=campaign,
                    source="campaign",
                    state="completed",
                    step_visit=1,
                    step_entered_at=NOW,
                    started_at=NOW,
                    finished_at=NOW,
                    updated_at=NOW,
                )
            )
            await session.flush()
            sent_at = NOW + timedelta(minutes=index)
            session.add(
                Message(
                    id=new_id(),
                    workspace_id=world.tenant.workspace_id,
                    enrollment_id=enrollment_id,
                    contact_id=contact_id,
                    sequence_id=world.sequence_id,
                    campaign_id=campaign,
                    step_key=send.step_key,
                    visit=send.visit,
                    channel="email",
                    variant=send.variant,
                    content={},
                    status="delivered" if send.sent else "queued",
                    due_at=sent_at,
                    created_at=sent_at,
                    updated_at=sent_at,
                    sent_at=sent_at if send.sent else None,
                    first_opened_at=sent_at + timedelta(hours=1) if send.opened else None,
                    first_clicked_at=sent_at + timedelta(hours=2) if send.clicked else None,
                    replied_at=sent_at + timedelta(hours=3) if send.replied else None,
                )
            )
            for offset in send.purchases:
                session.add(
                    Event(
                        id=new_id(),
                        workspace_id=world.tenant.workspace_id,
                        contact_id=contact_id,
                        type="purchase",
                        properties={"revenue": 10},
                        revenue=Decimal(10),
                        occurred_at=sent_at + offset,
                        received_at=sent_at + offset,
                    )
                )
    return ids
