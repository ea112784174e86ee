"""last_activity_at, listing with filters, reads, settings and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import clock
from tests.events.helpers import batch, contact_row, contacts_of
from tests.fixtures.factories import stored_contact as make_contact
from tests.fixtures.tenants import Tenant

PROBLEM = "application/problem+json"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def at(hours: int) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


async def test_last_activity_only_moves_forward(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(NOW + timedelta(days=1))
    contact = await make_contact(session_factory, tenant, external_id="c")
    await batch(
        client,
        tenant,
        [
            {"external_id": "c", "type": "x", "occurred_at": at(-5)},
            {"external_id": "c", "type": "x", "occurred_at": at(2)},
            {"external_id": "c", "type": "x", "occurred_at": at(1)},
        ],
    )
    assert (await contact_row(session_factory, contact)).last_activity_at == NOW + timedelta(
        hours=2
    )
    # an older event arriving later does not move it back
    await batch(client, tenant, [{"external_id": "c", "type": "x", "occurred_at": at(-10)}])
    assert (await contact_row(session_factory, contact)).last_activity_at == NOW + timedelta(
        hours=2
    )
    await batch(client, tenant, [{"external_id": "c", "type": "x", "occurred_at": at(3)}])
    assert (await contact_row(session_factory, contact)).last_activity_at == NOW + timedelta(
        hours=3
    )


async def test_a_duplicate_does_not_touch_activity(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(NOW + timedelta(days=1))
    contact = await make_contact(session_factory, tenant, external_id="c")
    await batch(client, tenant, [{"external_id": "c", "type": "x", "event_id": "k"}])
    first = (await contact_row(session_factory, contact)).last_activity_at
    clock.advance(timedelta(hours=1))
    await batch(client, tenant, [{"external_id": "c", "type": "x", "event_id": "k"}])
    assert (await contact_row(session_factory, contact)).last_activity_at == first


async def test_list_filters_and_pagination(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(NOW + timedelta(days=1))
    a = await make_contact(session_factory, tenant, external_id="a")
    await make_contact(session_factory, tenant, external_id="b")
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "a", "type": "purchase", "occurred_at": at(0)},
            {"external_id": "a", "type": "page.viewed", "occurred_at": at(1)},
            {"external_id": "b", "type": "purchase", "occurred_at": at(2)},
            {"external_id": "b", "type": "purchase", "occurred_at": at(3)},
        ],
    )
    ids = [r["id"] for r in answer["results"]]

    async def listed(**params: str) -> list[str]:
        response = await client.get("/v1/events", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["data"]]

    assert await listed() == ids[::-1]  # newest first
    assert await listed(contact_id=str(a)) == [ids[1], ids[0]]
    assert await listed(type="purchase") == [ids[3], ids[2], ids[0]]
    assert await listed(occurred_after=at(1), occurred_before=at(3)) == [ids[2], ids[1]]
    assert await listed(type="purchase", occurred_after=at(1)) == [ids[3], ids[2]]

    first = (await client.get("/v1/events?limit=3", headers=tenant.headers)).json()
    assert [e["id"] for e in first["data"]] == ids[:0:-1]
    rest = await client.get(
        f"/v1/events?limit=3&cursor={first['next_cursor']}", headers=tenant.headers
    )
    assert [e["id"] for e in rest.json()["data"]] == [ids[0]]
    assert rest.json()["next_cursor"] is None

    bad = await client.get("/v1/events?occurred_after=yesterday", headers=tenant.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM


async def test_other_workspace_event_is_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await client.post(
        "/v1/events", json={"external_id": "v", "type": "x"}, headers=other_tenant.headers
    )
    response = await client.get(f"/v1/events/{theirs.json()['id']}", headers=tenant.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert (await client.get("/v1/events", headers=tenant.headers)).json()["data"] == []
    filtered = await client.get(
        "/v1/events", params={"contact_id": theirs.json()["contact_id"]}, headers=tenant.headers
    )
    assert filtered.json()["data"] == []


async def test_another_workspace_contact_id_is_not_attached(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    victim = await make_contact(session_factory, other_tenant, external_id="victim")
    response = await client.post(
        "/v1/events", json={"contact_id": str(victim), "type": "x"}, headers=tenant.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "unknown_contact"
    answer = await batch(client, tenant, [{"contact_id": str(victim), "type": "x"}])
    assert answer["results"][0]["status"] == "rejected"
    # an external id that exists only in the other workspace creates a contact here instead
    created = await batch(client, tenant, [{"external_id": "victim", "type": "x"}])
    assert created["results"][0]["contact_id"] != str(victim)
    assert (await contact_row(session_factory, victim)).last_activity_at is None
    assert (await client.get("/v1/events", headers=other_tenant.headers)).json()["data"] == []
    assert len(await contacts_of(session_factory, other_tenant)) == 1


async def test_workspace_settings_shape(client: httpx.AsyncClient, tenant: Tenant) -> None:
    shown = await client.get("/v1/workspace", headers=tenant.headers)
    assert shown.json()["settings"] == {"events": {"unknown_contacts": "create"}}
    renamed = await client.patch("/v1/workspace", json={"name": "Acme 2"}, headers=tenant.headers)
    assert renamed.json()["settings"] == {"events": {"unknown_contacts": "create"}}
    changed = await client.patch(
        "/v1/workspace",
        json={"settings": {"events": {"unknown_contacts": "reject"}}},
        headers=tenant.headers,
    )
    assert changed.json()["name"] == "Acme 2"
    assert changed.json()["settings"]["events"]["unknown_contacts"] == "reject"
    # an empty settings patch keeps what was set
    kept = await client.patch("/v1/workspace", json={"settings": {}}, headers=tenant.headers)
    assert kept.json()["settings"]["events"]["unknown_contacts"] == "reject"
    for bad in (
        {"settings": {"events": {"unknown_contacts": "maybe"}}},
        {"settings": {"events": {"other": 1}}},
        {"name": None},
        {"name": "nul\u0000name"},
    ):
        response = await client.patch("/v1/workspace", json=bad, headers=tenant.headers)
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == PROBLEM
