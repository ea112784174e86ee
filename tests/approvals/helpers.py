"""Building blocks for approval tests: reviewers (members with bound keys), campaigns as
draft rows, and the submit / edit moves of the campaigns domain reduced to what approvals
sees (round + status, then `open_request` / `void_open`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.approvals import service
from app.approvals.models import ApprovalRequest
from app.audit.service import Actor
from app.campaigns.models import Campaign
from app.contacts.models import Contact
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.ids import new_id
from app.segments.models import Segment, SegmentMembership
from app.workspaces import service as workspaces
from app.workspaces.schemas import MemberCreate
from tests.fixtures.tenants import Tenant, make_key

Factory = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Reviewer:
    id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def reviewer(
    factory: Factory, tenant: Tenant, name: str, roles: list[str], base: str = "editor"
) -> Reviewer:
    async with transaction(factory) as session:
        member = await workspaces.insert_member(
            session,
            tenant.workspace_id,
            MemberCreate(
                email=f"{name.lower()}@{tenant.workspace_id.hex[:8]}.example",
                name=name,
                role=base,
                reviewer_roles=roles,
            ),
        )
    token = await make_key(factory, tenant, ["approvals:write"], member_id=member.id)
    return Reviewer(member.id, token)


async def campaign(factory: Factory, tenant: Tenant, **fields: Any) -> uuid.UUID:
    async with transaction(factory) as session:
        row = Campaign(
            id=new_id(),
            workspace_id=tenant.workspace_id,
            name=fields.pop("name", "Winter sale"),
            type="one_off",
            channels=fields.pop("channels", []),
            include_segments=fields.pop("include_segments", []),
            exclude_segments=[],
            kpis=[],
            reentry={},
            tags=[],
            status="draft",
            **fields,
        )
        session.add(row)
    return row.id


async def segment_of(factory: Factory, tenant: Tenant, size: int) -> uuid.UUID:
    """A static segment with `size` plain contacts (no consent restrictions)."""
    async with transaction(factory) as session:
        seg = Segment(
            id=new_id(),
            workspace_id=tenant.workspace_id,
            name=f"Segment of {size}",
            kind="static",
            member_count=size,
        )
        session.add(seg)
        await session.flush()
        for index in range(size):
            contact = Contact(
                id=new_id(),
                workspace_id=tenant.workspace_id,
                email=f"c{index}-{seg.id.hex}@example.com",
            )
            session.add(contact)
            await session.flush()
            session.add(
                SegmentMembership(
                    workspace_id=tenant.workspace_id,
                    segment_id=seg.id,
                    contact_id=contact.id,
                    entered_at=utcnow(),
                )
            )
    return seg.id


async def submit(factory: Factory, tenant: Tenant, campaign_id: uuid.UUID) -> uuid.UUID:
    """What the campaigns domain does on submit: next round, in review, open the request."""
    async with transaction(factory) as session:
        row = await _locked(session, tenant, campaign_id)
        row.approval_round += 1
        row.status = "in_review"
        request = await service.open_request(session, row, Actor.system(), utcnow())
    return request.id


async def edit(factory: Factory, tenant: Tenant, campaign_id: uuid.UUID) -> None:
    """An edit of a reviewed campaign: its open request is voided, it is a draft again."""
    async with transaction(factory) as session:
        row = await _locked(session, tenant, campaign_id)
        await service.void_open(session, tenant.workspace_id, campaign_id, utcnow())
        row.status = "draft"
        row.budget_amount = (row.budget_amount or Decimal(0)) + 1


async def _locked(session: AsyncSession, tenant: Tenant, campaign_id: uuid.UUID) -> Campaign:
    statement = (
        select(Campaign)
        .where(Campaign.workspace_id == tenant.workspace_id, Campaign.id == campaign_id)
        .with_for_update()
    )
    return (await session.execute(statement)).scalar_one()


async def campaign_status(factory: Factory, campaign_id: uuid.UUID) -> str:
    async with factory() as session:
        return (await session.get_one(Campaign, campaign_id)).status


async def request_row(factory: Factory, request_id: uuid.UUID) -> ApprovalRequest:
    async with factory() as session:
        return await session.get_one(ApprovalRequest, request_id)


async def make_policy(
    client: httpx.AsyncClient, tenant: Tenant, stages: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    body = {"name": extra.pop("name", "Review"), "is_default": True, "stages": stages, **extra}
    response = await client.post("/v1/approval-policies", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def stage(
    name: str, roles: list[str] | None = None, rule: Any = "all", **kw: Any
) -> dict[str, Any]:
    return {"name": name, "reviewers": {"roles": roles or [], **kw}, "rule": rule}


async def decide(
    client: httpx.AsyncClient,
    who: Reviewer | Tenant,
    request_id: uuid.UUID,
    decision: str = "approve",
    comment: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"decision": decision}
    if comment is not None:
        body["comment"] = comment
    return await client.post(
        f"/v1/approvals/{request_id}/decisions", json=body, headers=who.headers
    )
