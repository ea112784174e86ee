"""Key use that changes data: one `api.<method>` row per successful key write, none for
reads, 4xx answers or idempotent replays."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.middleware import entity_of
from tests.fixtures.tenants import Tenant, make_key

Factory = async_sessionmaker[AsyncSession]
_TEMPLATE = {"name": "Hello", "channel": "sms", "content": {"text": "Hi"}}


async def _key_uses(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/audit-events", params={"action": "api.*"}, headers=tenant.headers
    )
    assert response.status_code == 200
    events: list[dict[str, Any]] = response.json()["data"]
    return events


async def test_writes_are_recorded_with_entity_status_and_request_id(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/v1/templates", json=_TEMPLATE, headers={**tenant.headers, "X-Request-Id": "create-1"}
    )
    assert created.status_code == 201
    template_id = created.json()["id"]
    patched = await client.patch(
        f"/v1/templates/{template_id}", json={"name": "Hello 2"}, headers=tenant.headers
    )
    assert patched.status_code == 200
    deleted = await client.delete(f"/v1/templates/{template_id}", headers=tenant.headers)
    assert deleted.status_code == 204

    delete, patch, create = await _key_uses(client, tenant)
    assert create["action"] == "api.post"
    assert create["entity_type"] == "template"
    assert create["entity_id"] == template_id  # from the Location header
    assert create["data"] == {"path": "/v1/templates", "route": "/v1/templates", "status": 201}
    assert create["request_id"] == created.headers["x-request-id"] == "create-1"
    # the owner's key is bound to the owner: the actor is that member, through that key
    assert create["actor"]["type"] == "member"
    assert create["actor"]["member_id"] == str(tenant.owner_id)
    assert patch["action"] == "api.patch"
    assert (patch["entity_type"], patch["entity_id"]) == ("template", template_id)
    assert patch["data"]["route"] == "/v1/templates/{template_id}"
    assert patch["data"]["status"] == 200
    assert patch["request_id"] == patched.headers["x-request-id"]
    assert delete["action"] == "api.delete"
    assert delete["data"]["status"] == 204
    assert delete["request_id"] == deleted.headers["x-request-id"]

    by_request = await client.get(
        "/v1/audit-events", params={"request_id": "create-1"}, headers=tenant.headers
    )
    assert [e["action"] for e in by_request.json()["data"]] == ["api.post"]


async def test_unbound_key_is_the_actor(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    token = await make_key(session_factory, tenant, ["templates:write"])
    response = await client.post(
        "/v1/templates", json=_TEMPLATE, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201
    keys = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["data"]
    key_id = next(k["id"] for k in keys if k["scopes"] == ["templates:write"])

    (event,) = await _key_uses(client, tenant)
    assert event["actor"] == {"type": "key", "member_id": None, "api_key_id": key_id}
    filtered = await client.get(
        "/v1/audit-events", params={"api_key_id": key_id}, headers=tenant.headers
    )
    assert [e["id"] for e in filtered.json()["data"]] == [event["id"]]


async def test_reads_and_failures_are_not_recorded(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = await client.post("/v1/templates", json=_TEMPLATE, headers=other_tenant.headers)
    theirs = created.json()["id"]

    assert (await client.get("/v1/templates", headers=tenant.headers)).status_code == 200
    # a write to another workspace's template: 404
    missing = await client.patch(
        f"/v1/templates/{theirs}", json={"name": "Mallory"}, headers=tenant.headers
    )
    assert missing.status_code == 404
    invalid = await client.post("/v1/templates", json={"name": ""}, headers=tenant.headers)
    assert invalid.status_code == 422
    unauthenticated = await client.post("/v1/templates", json=_TEMPLATE)
    assert unauthenticated.status_code == 401

    assert await _key_uses(client, tenant) == []
    # the other workspace's write is in its own log only
    (theirs_event,) = await _key_uses(client, other_tenant)
    assert theirs_event["entity_id"] == theirs
    hidden = await client.get(f"/v1/audit-events/{theirs_event['id']}", headers=tenant.headers)
    assert hidden.status_code == 404


async def test_idempotent_replay_is_recorded_once(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "create-template-1"}
    first = await client.post("/v1/templates", json=_TEMPLATE, headers=headers)
    replay = await client.post("/v1/templates", json=_TEMPLATE, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("idempotent-replayed") == "true"

    (event,) = await _key_uses(client, tenant)
    assert event["request_id"] == first.headers["x-request-id"]


def test_entity_from_route_template() -> None:
    some = uuid.uuid4()
    assert entity_of(
        "/v1/contacts/{contact_id}/consent/{channel}",
        {"contact_id": str(some), "channel": "email"},
        None,
    ) == ("contact", some)
    assert entity_of("/v1/sequences/{sequence_id}/publish", {"sequence_id": some}, None) == (
        "sequence",
        some,
    )
    assert entity_of("/v1/api-keys", {}, f"/v1/api-keys/{some}") == ("api_key", some)
    assert entity_of("/v1/contacts/imports", {}, f"/v1/contacts/imports/{some}") == (
        "contact",
        None,
    )
    assert entity_of("/v1/workspace", {}, None) == ("workspace", None)
    assert entity_of("/v1/unsubscribe/{token}", {"token": "abc"}, None) == (
        "unsubscribe",
        None,
    )
