"""POST /v1/events and /v1/events/batch: contact references, rules, revenue, batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.contacts.models import Contact
from app.core.clock import clock
from app.events.models import Event
from tests.events.helpers import batch, contact_row, contacts_of
from tests.fixtures.factories import stored_contact as make_contact
from tests.fixtures.tenants import Tenant, make_key

PROBLEM = "application/problem+json"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def event_count(factory: async_sessionmaker[AsyncSession]) -> int:
    async with factory() as session:
        return int((await session.execute(select(func.count()).select_from(Event))).scalar_one())


async def test_single_event_by_contact_id(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(NOW)
    contact = await make_contact(session_factory, tenant, email="ada@example.com")
    response = await client.post(
        "/v1/events",
        json={"contact_id": str(contact), "type": "form.submitted", "source": "website"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["contact_id"] == str(contact)
    assert event["type"] == "form.submitted"
    assert event["source"] == "website"
    assert event["properties"] == {}
    assert event["revenue"] is None
    assert event["event_id"] is None
    # occurred_at defaults to now, from the one clock
    assert datetime.fromisoformat(event["occurred_at"]) == NOW
    assert datetime.fromisoformat(event["received_at"]) == NOW
    fetched = await client.get(f"/v1/events/{event['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json() == event
    assert (await contact_row(session_factory, contact)).last_activity_at == NOW


async def test_contact_by_external_id_and_by_email(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    by_external = await make_contact(session_factory, tenant, external_id="crm-1")
    by_email = await make_contact(session_factory, tenant, email="ada@example.com")
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "crm-1", "type": "purchase"},
            # emails match case-insensitively, surrounding spaces ignored
            {"email": "  Ada@Example.COM ", "type": "page.viewed"},
        ],
    )
    assert [r["status"] for r in answer["results"]] == ["accepted", "accepted"]
    assert answer["results"][0]["contact_id"] == str(by_external)
    assert answer["results"][1]["contact_id"] == str(by_email)
    assert len(await contacts_of(session_factory, tenant)) == 2


async def test_exactly_one_contact_reference(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for body in (
        {"type": "purchase"},
        {"type": "purchase", "email": "a@example.com", "external_id": "x"},
    ):
        response = await client.post("/v1/events", json=body, headers=tenant.headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        assert "exactly one" in response.text


async def test_unknown_contacts_are_created_by_default(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "new-1", "type": "signup"},
            {"email": "New@Example.com", "type": "signup"},
            {"external_id": "new-1", "type": "login"},
        ],
    )
    assert answer["accepted"] == 3
    contacts = {(c.external_id, c.email): c.id for c in await contacts_of(session_factory, tenant)}
    assert set(contacts) == {("new-1", None), (None, "new@example.com")}
    first, second, third = answer["results"]
    assert first["contact_id"] == third["contact_id"] == str(contacts["new-1", None])
    assert second["contact_id"] == str(contacts[None, "new@example.com"])


async def test_unknown_contacts_rejected_when_the_workspace_says_so(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    known = await make_contact(session_factory, tenant, external_id="known")
    patched = await client.patch(
        "/v1/workspace",
        json={"settings": {"events": {"unknown_contacts": "reject"}}},
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"] == {"events": {"unknown_contacts": "reject"}}
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "ghost", "type": "signup"},
            {"email": "ghost@example.com", "type": "signup"},
            {"external_id": "known", "type": "signup"},
        ],
    )
    assert [r["status"] for r in answer["results"]] == ["rejected", "rejected", "accepted"]
    assert answer["results"][0]["errors"][0]["pointer"] == "/events/0/external_id"
    assert answer["results"][0]["errors"][0]["code"] == "unknown_contact"
    assert answer["results"][1]["errors"][0]["pointer"] == "/events/1/email"
    assert [c.id for c in await contacts_of(session_factory, tenant)] == [known]

    single = await client.post(
        "/v1/events", json={"email": "ghost@example.com", "type": "x"}, headers=tenant.headers
    )
    assert single.status_code == 422
    assert single.json()["errors"][0]["pointer"] == "/email"


async def test_unknown_contact_id_is_always_rejected(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/events",
        json={"contact_id": "0190f3c8-8d2e-7b61-9a55-000000000000", "type": "x"},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["pointer"] == "/contact_id"
    assert response.json()["errors"][0]["code"] == "unknown_contact"


async def test_revenue_is_copied_and_must_be_numeric(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "c", "type": "purchase", "properties": {"revenue": 49.9, "sku": "A"}},
            {"external_id": "c", "type": "purchase", "properties": {"revenue": 10}},
            {"external_id": "c", "type": "purchase", "properties": {"revenue": "49.90"}},
            {"external_id": "c", "type": "purchase", "properties": {"revenue": True}},
            {"external_id": "c", "type": "purchase", "properties": {"revenue": 1e20}},
            {"external_id": "c", "type": "purchase", "properties": {"sku": "B"}},
        ],
    )
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["accepted", "accepted", "rejected", "rejected", "rejected", "accepted"]
    assert answer["results"][2]["errors"][0]["pointer"] == "/events/2/properties"
    async with session_factory() as session:
        rows = {str(e.id): e for e in (await session.execute(select(Event))).scalars()}
    assert rows[answer["results"][0]["id"]].revenue == Decimal("49.9")
    assert rows[answer["results"][0]["id"]].properties == {"revenue": 49.9, "sku": "A"}
    assert rows[answer["results"][1]["id"]].revenue == Decimal(10)
    assert rows[answer["results"][5]["id"]].revenue is None
    shown = await client.get(f"/v1/events/{answer['results'][0]['id']}", headers=tenant.headers)
    assert shown.json()["revenue"] == 49.9


async def test_future_timestamps_are_rejected_past_ones_kept(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(NOW)
    soon = (NOW + timedelta(minutes=4)).isoformat()
    late = (NOW + timedelta(minutes=6)).isoformat()
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "c", "type": "x", "occurred_at": soon},
            {"external_id": "c", "type": "x", "occurred_at": late},
            {"external_id": "c", "type": "x", "occurred_at": "1999-12-31T23:00:00-05:00"},
            {"external_id": "c", "type": "x", "occurred_at": "2026-11-22T12:00:00"},
        ],
    )
    assert [r["status"] for r in answer["results"]] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",  # no offset: ambiguous
    ]
    assert answer["results"][1]["errors"][0]["code"] == "future_timestamp"
    assert answer["results"][1]["errors"][0]["pointer"] == "/events/1/occurred_at"
    old = await client.get(f"/v1/events/{answer['results'][2]['id']}", headers=tenant.headers)
    assert datetime.fromisoformat(old.json()["occurred_at"]) == datetime(
        2000, 1, 1, 4, 0, tzinfo=UTC
    )
    assert await event_count(session_factory) == 2


async def test_reserved_namespace_needs_admin(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    writer = await make_key(session_factory, tenant, ["events:write"])
    headers = {"Authorization": f"Bearer {writer}"}
    body = {"external_id": "c", "type": "email.opened"}
    refused = await client.post("/v1/events", json=body, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "reserved_type"
    assert refused.json()["errors"][0]["pointer"] == "/type"
    # `emailing.x` is not in the namespace
    ok = await client.post("/v1/events", json={**body, "type": "emailing.x"}, headers=headers)
    assert ok.status_code == 201
    # the owner's admin key may
    admin = await client.post("/v1/events", json=body, headers=tenant.headers)
    assert admin.status_code == 201


async def test_scopes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    reader = {"Authorization": f"Bearer {await make_key(session_factory, tenant, ['read'])}"}
    writer = {"Authorization": f"Bearer {await make_key(session_factory, tenant, ['write'])}"}
    body = {"external_id": "c", "type": "x"}
    assert (await client.post("/v1/events", json=body, headers=reader)).status_code == 403
    assert (await client.post("/v1/events", json=body, headers=writer)).status_code == 201
    assert (await client.get("/v1/events", headers=reader)).status_code == 200


async def test_batch_with_mixed_items_lands_the_good_ones(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "a", "type": "ok"},
            {"external_id": "a", "type": "bad type with spaces"},
            {"external_id": "a", "type": "ok", "surprise": 1},
            "not an object",
            {"external_id": "a", "type": "ok", "properties": {"k": "\u0000"}},
            {"email": "b@example.com", "type": "ok", "event_id": "e-1"},
        ],
    )
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (2, 0, 4)
    assert [r["index"] for r in answer["results"]] == list(range(6))
    assert answer["results"][1]["errors"][0]["pointer"] == "/events/1/type"
    assert answer["results"][2]["errors"][0]["pointer"] == "/events/2/surprise"
    assert answer["results"][2]["errors"][0]["code"] == "extra_forbidden"
    assert answer["results"][4]["errors"][0]["pointer"] == "/events/4/properties"
    assert await event_count(session_factory) == 2


async def test_email_longer_than_the_column_once_lowercased_is_rejected(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A dotted capital I lowercases to two characters: 300 of them pass the 320 limit but
    not the column (a 500 that took the whole batch down)."""
    long_email = "\u0130" * 300 + "@example.com"
    answer = await batch(
        client,
        tenant,
        [{"email": long_email, "type": "ok"}, {"email": "b@example.com", "type": "ok"}],
    )
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert answer["results"][0]["errors"][0]["pointer"] == "/events/0/email"
    assert await event_count(session_factory) == 1
    single = await client.post(
        "/v1/events", json={"email": long_email, "type": "ok"}, headers=tenant.headers
    )
    assert single.status_code == 422, single.text
    assert single.json()["errors"][0]["pointer"] == "/email"


async def test_batch_limits(client: httpx.AsyncClient, tenant: Tenant) -> None:
    empty = await client.post("/v1/events/batch", json={"events": []}, headers=tenant.headers)
    assert empty.status_code == 422
    too_many = await client.post(
        "/v1/events/batch",
        json={"events": [{"external_id": "a", "type": "x"}] * 1001},
        headers=tenant.headers,
    )
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["pointer"] == "/events"
    big = await client.post(
        "/v1/events",
        json={"external_id": "a", "type": "x", "properties": {"blob": "x" * 17_000}},
        headers=tenant.headers,
    )
    assert big.status_code == 422
    assert big.json()["errors"][0]["pointer"] == "/properties"


async def test_full_batch_of_1000(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    events = [
        {"external_id": f"c-{i % 250}", "type": "page.viewed", "event_id": f"pv-{i}"}
        for i in range(1000)
    ]
    answer = await batch(client, tenant, events)
    assert answer["accepted"] == 1000
    assert len(await contacts_of(session_factory, tenant)) == 250
    assert await event_count(session_factory) == 1000


async def test_events_for_an_erased_contact_are_rejected(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    contact = await make_contact(session_factory, tenant, external_id="gone")
    async with session_factory() as session, session.begin():
        row = await session.get(Contact, contact)
        assert row is not None
        row.erased_at, row.external_id = NOW, None
    response = await client.post(
        "/v1/events", json={"contact_id": str(contact), "type": "x"}, headers=tenant.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "contact_erased"
    assert await event_count(session_factory) == 0
