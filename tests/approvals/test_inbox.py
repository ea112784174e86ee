"""The reviewer inbox and the campaigns API end to end; cross-tenant ids are 404."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from tests.fixtures.approvals import (
    campaign,
    decide,
    make_policy,
    reviewer,
    segment_of,
    stage,
    submit,
)
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant, make_key


async def test_inbox_lists_what_awaits_me_with_campaign_context(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    brand = await reviewer(session_factory, tenant, "Bea", ["brand"])
    legal = await reviewer(session_factory, tenant, "Lou", ["legal"])
    await make_policy(client, tenant, [stage("Brand", ["brand"]), stage("Legal", ["legal"])])
    segment = await segment_of(session_factory, tenant, 2)
    camp = await campaign(
        session_factory,
        tenant,
        name="Winter sale",
        objective="Sell winter stock",
        owner_member_id=tenant.owner_id,
        channels=["email"],
        include_segments=[str(segment)],
    )
    request_id = await submit(session_factory, tenant, camp)
    inbox = "/v1/approvals?status=pending&reviewer=me"

    mine = (await client.get(inbox, headers=brand.headers)).json()["data"]
    assert [r["id"] for r in mine] == [str(request_id)]
    context = mine[0]["campaign"]
    assert context["name"] == "Winter sale"
    assert context["objective"] == "Sell winter stock"
    assert context["owner_name"] == "Owner"
    assert context["channels"] == ["email"]
    assert context["include_segments"] == [
        {"id": str(segment), "name": "Segment of 2", "member_count": 2}
    ]
    assert mine[0]["stages"][0]["name"] == "Brand"
    assert (await client.get(inbox, headers=legal.headers)).json()["data"] == []

    await decide(client, brand, request_id, comment="Looks good")
    assert (await client.get(inbox, headers=brand.headers)).json()["data"] == []
    waiting = (await client.get(inbox, headers=legal.headers)).json()["data"]
    assert waiting[0]["current_stage"] == 1
    assert waiting[0]["decisions"][0]["comment"] == "Looks good"
    approved = await client.get("/v1/approvals?status=approved", headers=tenant.headers)
    assert approved.json()["data"] == []


async def test_reviewer_me_with_the_owner_key(client: httpx.AsyncClient, tenant: Tenant) -> None:
    # The tenant's own key is bound to the owner: allowed, and empty.
    response = await client.get("/v1/approvals?reviewer=me", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["data"] == []


async def test_unbound_key_inbox_is_403(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    token = await make_key(session_factory, tenant, ["approvals:read"])
    response = await client.get(
        "/v1/approvals?reviewer=me", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403


async def test_through_the_campaigns_api(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    legal = await reviewer(session_factory, tenant, "Ray", ["legal"])
    await make_policy(client, tenant, [stage("Legal", ["legal"])])
    created = await client.post(
        "/v1/campaigns",
        json={"name": "Spring", "budget": {"amount": "100.00", "currency": "EUR"}},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    camp = created.json()["id"]
    submitted = await client.post(f"/v1/campaigns/{camp}/submit", headers=tenant.headers)
    assert submitted.status_code == 200, submitted.text
    pending = (await client.get("/v1/approvals?reviewer=me", headers=legal.headers)).json()
    request_id = pending["data"][0]["id"]
    assert pending["data"][0]["campaign"]["budget_amount"] == "100.00"
    assert (await decide(client, legal, request_id, comment="ok")).status_code == 201
    got = await client.get(f"/v1/campaigns/{camp}", headers=tenant.headers)
    assert got.json()["status"] == "approved"

    async with session_factory() as session:
        event = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "approval.decided"))
        ).one()
    assert event.member_id == legal.id
    assert event.data is not None
    assert event.data["decision"] == "approve"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/approval-policies/{policy}", None),
        ("PATCH", "/v1/approval-policies/{policy}", {"name": "Mine now"}),
        ("DELETE", "/v1/approval-policies/{policy}", None),
        ("GET", "/v1/approvals/{request}", None),
        ("POST", "/v1/approvals/{request}/decisions", {"decision": "approve"}),
    ],
)
async def test_other_workspace_ids_are_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: Factory,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    await reviewer(session_factory, other_tenant, "Vic", ["legal"])
    policy = await make_policy(client, other_tenant, [stage("Legal", ["legal"])])
    request_id: uuid.UUID = await submit(
        session_factory, other_tenant, await campaign(session_factory, other_tenant)
    )
    url = path.format(policy=policy["id"], request=request_id)
    response = await client.request(method, url, json=body, headers=tenant.headers)
    assert response.status_code == 404
    listed = await client.get("/v1/approvals", headers=tenant.headers)
    assert listed.json()["data"] == []
