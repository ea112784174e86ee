"""GET /v1/audit-events: filters, pages, isolation, and no way to change the log."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import AuditEvent
from app.audit.service import Actor, diff, record
from app.core.clock import clock, utcnow
from app.core.db import transaction
from tests.audit.helpers import seed
from tests.fixtures.tenants import Tenant

Factory = async_sessionmaker[AsyncSession]


async def _actions(client: httpx.AsyncClient, tenant: Tenant, **params: str) -> list[str]:
    response = await client.get("/v1/audit-events", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [event["action"] for event in response.json()["data"]]


async def test_filters(client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory) -> None:
    clock.freeze()
    start = utcnow()
    ws = tenant.workspace_id
    campaign, other_campaign = uuid.uuid4(), uuid.uuid4()
    member, key = uuid.uuid4(), uuid.uuid4()
    by_member = Actor("member", member, key)
    await seed(session_factory, ws, "campaign.created", actor=by_member, entity_id=campaign)
    clock.advance(timedelta(minutes=1))
    await seed(
        session_factory,
        ws,
        "campaign.updated",
        actor=Actor("key", None, key),
        entity_id=campaign,
        request_id="req-42",
        changes=diff({"name": "A"}, {"name": "B"}),
    )
    clock.advance(timedelta(minutes=1))
    await seed(session_factory, ws, "campaign.submitted", entity_id=other_campaign)
    await seed(session_factory, ws, "approval_policy.created", entity_type="approval_policy")
    # would match `approval_policy.*` if `_` were a LIKE wildcard
    await seed(session_factory, ws, "approvalxpolicy.created", entity_type="approval_policy")

    assert await _actions(client, tenant, action="campaign.updated") == ["campaign.updated"]
    assert await _actions(client, tenant, action="campaign.*") == [
        "campaign.submitted",
        "campaign.updated",
        "campaign.created",
    ]
    assert await _actions(client, tenant, action="approval_policy.*") == ["approval_policy.created"]
    assert await _actions(client, tenant, action="campaign") == []
    assert await _actions(client, tenant, entity_type="approval_policy") == [
        "approvalxpolicy.created",
        "approval_policy.created",
    ]
    assert await _actions(client, tenant, entity_id=str(campaign)) == [
        "campaign.updated",
        "campaign.created",
    ]
    assert await _actions(client, tenant, member_id=str(member)) == ["campaign.created"]
    assert await _actions(client, tenant, api_key_id=str(key)) == [
        "campaign.updated",
        "campaign.created",
    ]
    assert await _actions(client, tenant, request_id="req-42") == ["campaign.updated"]
    one_minute = (start + timedelta(minutes=1)).isoformat()
    assert await _actions(client, tenant, occurred_after=one_minute, action="campaign.*") == [
        "campaign.submitted",
        "campaign.updated",
    ]
    assert await _actions(client, tenant, occurred_before=one_minute) == ["campaign.created"]
    assert await _actions(client, tenant, entity_id=str(campaign), occurred_after=one_minute) == [
        "campaign.updated"
    ]

    updated = (
        await client.get(
            "/v1/audit-events", params={"request_id": "req-42"}, headers=tenant.headers
        )
    ).json()["data"][0]
    assert updated["actor"] == {"type": "key", "member_id": None, "api_key_id": str(key)}
    assert updated["changes"] == {"name": {"before": "A", "after": "B"}}
    assert updated["entity_id"] == str(campaign)


@pytest.mark.parametrize(
    "params",
    [
        {"action": "campaign*"},
        {"action": "%"},
        {"action": "campaign.*.x"},
        {"entity_id": "nope"},
        {"occurred_after": "2026-01-01T00:00:00"},  # no offset
        {"request_id": "a b"},
        {"limit": "0"},
        {"cursor": "!!"},
    ],
)
async def test_bad_filters_are_4xx_problems(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str]
) -> None:
    response = await client.get("/v1/audit-events", params=params, headers=tenant.headers)
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_pages_newest_first(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    ids = [await seed(session_factory, tenant.workspace_id, f"campaign.step_{n}") for n in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/audit-events", params=params, headers=tenant.headers)).json()
        seen += [event["id"] for event in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [str(i) for i in reversed(ids)]


async def test_get_one_and_other_workspaces_are_invisible(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    mine = await seed(session_factory, tenant.workspace_id, "campaign.created")
    theirs = await seed(session_factory, other_tenant.workspace_id, "campaign.launched")

    response = await client.get(f"/v1/audit-events/{mine}", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["action"] == "campaign.created"
    assert response.json()["actor"] == {"type": "system", "member_id": None, "api_key_id": None}

    missing = await client.get(f"/v1/audit-events/{theirs}", headers=tenant.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert await _actions(client, tenant) == ["campaign.created"]
    assert await _actions(client, tenant, action="campaign.launched") == []
    assert await _actions(client, other_tenant) == ["campaign.launched"]
    unknown = await client.get(f"/v1/audit-events/{uuid.uuid4()}", headers=tenant.headers)
    assert unknown.status_code == 404


async def test_needs_audit_read_scope(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    from tests.fixtures.tenants import make_key

    templates_only = await make_key(session_factory, tenant, ["templates:read"])
    auditor = await make_key(session_factory, tenant, ["audit:read"])
    forbidden = await client.get(
        "/v1/audit-events", headers={"Authorization": f"Bearer {templates_only}"}
    )
    assert forbidden.status_code == 403
    allowed = await client.get("/v1/audit-events", headers={"Authorization": f"Bearer {auditor}"})
    assert allowed.status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_no_route_changes_the_log(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory, method: str
) -> None:
    event_id = await seed(session_factory, tenant.workspace_id, "campaign.created")
    body = {"action": "campaign.deleted"}
    for path in ("/v1/audit-events", f"/v1/audit-events/{event_id}"):
        response = await client.request(method, path, json=body, headers=tenant.headers)
        assert response.status_code == 405, (method, path)
        assert response.headers["content-type"] == "application/problem+json"

    still = (await client.get(f"/v1/audit-events/{event_id}", headers=tenant.headers)).json()
    assert still["action"] == "campaign.created"
    async with transaction(session_factory) as session:
        count = await session.scalar(select(func.count()).select_from(AuditEvent))
    assert count == 1  # and the 405s were not recorded as key use either


async def test_openapi_offers_only_reads(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    audit = {path: set(ops) for path, ops in paths.items() if path.startswith("/v1/audit")}
    assert audit == {"/v1/audit-events": {"get"}, "/v1/audit-events/{event_id}": {"get"}}


async def test_rolled_back_transaction_leaves_no_row(
    tenant: Tenant, session_factory: Factory
) -> None:
    class Boom(Exception):
        pass

    async def change_then_fail() -> None:
        async with transaction(session_factory) as session:
            await record(
                session,
                tenant.workspace_id,
                Actor.system(),
                "campaign.launched",
                entity_type="campaign",
                entity_id=uuid.uuid4(),
            )
            await session.flush()  # the row reached the database inside the transaction
            raise Boom

    with pytest.raises(Boom):
        await change_then_fail()
    async with transaction(session_factory) as session:
        count = await session.scalar(select(func.count()).select_from(AuditEvent))
    assert count == 0
