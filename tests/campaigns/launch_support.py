"""Helpers for launch and trigger tests: campaigns stored directly (the campaigns API is
another helper's), segments, contacts and sequences through the real API, the real
`campaigns_scan` task run by a burst arq worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.audit.service import Actor
from app.campaigns.lifecycle import launch
from app.campaigns.models import Campaign, CampaignAction
from app.config import Settings
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.ids import new_id
from app.core.jobs import enqueue
from app.core.state import AppState
from app.sequences.models import Enrollment
from tests.fixtures.tenants import Tenant
from tests.sequences.engine import support
from tests.sequences.engine.support import Factory


async def static_segment(
    client: httpx.AsyncClient, tenant: Tenant, contact_ids: list[str], name: str = "Seg"
) -> str:
    response = await client.post(
        "/v1/segments",
        json={"name": f"{name} {uuid.uuid4().hex[:6]}", "kind": "static"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    segment_id: str = response.json()["id"]
    if contact_ids:
        await add_members(client, tenant, segment_id, contact_ids)
    return segment_id


async def add_members(
    client: httpx.AsyncClient, tenant: Tenant, segment_id: str, contact_ids: list[str]
) -> None:
    response = await client.post(
        f"/v1/segments/{segment_id}/members",
        json={"contact_ids": contact_ids},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text


async def remove_members(
    client: httpx.AsyncClient, tenant: Tenant, segment_id: str, contact_ids: list[str]
) -> None:
    response = await client.post(
        f"/v1/segments/{segment_id}/members/remove",
        json={"contact_ids": contact_ids},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text


async def sequence(client: httpx.AsyncClient, tenant: Tenant, *, wait: str | None = None) -> str:
    """send `welcome` (then, with `wait`, wait and send `follow_up`)."""
    first = await support.email_template(client, tenant, "Welcome")
    steps: list[dict[str, Any]] = [
        {"key": "welcome", "type": "send", "channel": "email", "template_id": first}
    ]
    if wait is not None:
        follow = await support.email_template(client, tenant, "Follow-up")
        steps += [
            {"key": "nap", "type": "wait", "duration": wait},
            {"key": "follow_up", "type": "send", "channel": "email", "template_id": follow},
        ]
    return await support.published_sequence(client, tenant, {"steps": steps})


async def campaign(
    factory: Factory,
    tenant: Tenant,
    sequence_id: str,
    include: list[str],
    *,
    exclude: list[str] | None = None,
    channels: list[str] | None = None,
    status: str = "approved",
    **fields: Any,
) -> uuid.UUID:
    """Store an approved campaign (as the campaigns API leaves it after approval)."""
    values: dict[str, Any] = {
        "type": "one_off",
        "trigger": None,
        "reentry": {},
        "start_at": None,
        "end_at": None,
        **fields,
    }
    async with transaction(factory) as session:
        row = Campaign(
            id=new_id(),
            workspace_id=tenant.workspace_id,
            name="Launch test",
            kpis=[],
            channels=channels if channels is not None else ["email"],
            include_segments=include,
            exclude_segments=exclude or [],
            sequence_id=uuid.UUID(sequence_id),
            timezone="UTC",
            tags=[],
            status=status,
            version=1,
            approval_round=1,
            **values,
        )
        session.add(row)
    return row.id


async def load(factory: Factory, campaign_id: uuid.UUID) -> Campaign:
    async with factory() as session:
        found = await session.get(Campaign, campaign_id)
        assert found is not None
        return found


async def call(factory: Factory, campaign_id: uuid.UUID, name: str, *args: Any) -> Any:
    """Run one `app.campaigns.lifecycle.launch` function in its own transaction, as an
    endpoint would."""
    async with transaction(factory) as session:
        row = await session.get(Campaign, campaign_id)
        assert row is not None
        function = getattr(launch, name)
        if name in ("launch", "unschedule"):
            return await function(session, row, utcnow(), *args)
        return await function(session, row, Actor.system(), utcnow(), *args)


async def audience_ids(factory: Factory, campaign_id: uuid.UUID) -> set[uuid.UUID]:
    async with factory() as session:
        row = await session.get(Campaign, campaign_id)
        assert row is not None
        query = await launch.audience(session, row, utcnow())
        return set((await session.execute(query)).scalars())


async def enrollments(factory: Factory, campaign_id: uuid.UUID) -> list[Enrollment]:
    async with factory() as session:
        result = await session.execute(
            select(Enrollment).where(Enrollment.campaign_id == campaign_id).order_by(Enrollment.id)
        )
        return list(result.scalars())


async def enrolled_contacts(factory: Factory, campaign_id: uuid.UUID) -> list[uuid.UUID]:
    return sorted(row.contact_id for row in await enrollments(factory, campaign_id))


async def actions(factory: Factory, campaign_id: uuid.UUID) -> list[CampaignAction]:
    async with factory() as session:
        result = await session.execute(
            select(CampaignAction)
            .where(CampaignAction.campaign_id == campaign_id)
            .order_by(CampaignAction.due_at, CampaignAction.kind)
        )
        return list(result.scalars())


async def audits(factory: Factory, campaign_id: uuid.UUID, action: str) -> list[AuditEvent]:
    async with factory() as session:
        result = await session.execute(
            select(AuditEvent)
            .where(AuditEvent.entity_id == campaign_id, AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
        return list(result.scalars())


async def count_messages(factory: Factory, campaign_id: uuid.UUID, step_key: str) -> int:
    from app.channels.models import Message

    async with factory() as session:
        result = await session.execute(
            select(func.count())
            .select_from(Message)
            .join(Enrollment, Enrollment.id == Message.enrollment_id)
            .where(Enrollment.campaign_id == campaign_id, Message.step_key == step_key)
        )
        return int(result.scalar_one())


async def campaigns_scan(state: AppState, settings: Settings) -> None:
    """One tick of the `campaigns_scan` cron (run by a real burst worker), then the jobs the
    enrollments it made need (one engine scan)."""
    async with transaction(state.session_factory, state.queue) as session:
        enqueue(session, "campaigns_scan", job_key=(uuid.uuid4(),))
    await support.run_jobs(settings)


def at(value: datetime) -> str:
    return value.isoformat()
