"""Upsert semantics and concurrency: one row however many clients race."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.contacts.models import Contact
from tests.fixtures.tenants import Tenant


async def upsert(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> httpx.Response:
    return await client.post("/v1/contacts/upsert", json=body, headers=tenant.headers)


async def count(factory: async_sessionmaker[AsyncSession], tenant: Tenant) -> int:
    async with factory() as session:
        statement = select(func.count()).where(Contact.workspace_id == tenant.workspace_id)
        return int((await session.execute(statement)).scalar_one())


async def test_created_updated_unchanged(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await upsert(
        client, tenant, external_id="crm-1", email="A@example.com", attributes={"plan": "pro"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["outcome"] == "created"
    assert created.json()["email"] == "a@example.com"

    same = await upsert(client, tenant, external_id="crm-1", attributes={"plan": "pro"})
    assert same.status_code == 200
    assert same.json()["outcome"] == "unchanged"
    assert same.json()["updated_at"] == created.json()["updated_at"]

    changed = await upsert(
        client,
        tenant,
        external_id="crm-1",
        timezone="Asia/Tokyo",
        phone=None,
        attributes={"plan": None, "seats": 4},
    )
    assert changed.status_code == 200
    body = changed.json()
    assert body["outcome"] == "updated"
    assert body["id"] == created.json()["id"]
    assert body["email"] == "a@example.com"  # omitted: kept
    assert body["timezone"] == "Asia/Tokyo"
    assert body["attributes"] == {"seats": 4}


async def test_created_with_null_attributes_stores_none(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await upsert(client, tenant, email="n@example.com", attributes={"a": 1, "b": None})
    assert created.json()["attributes"] == {"a": 1}


async def test_email_match_and_adoption(client: httpx.AsyncClient, tenant: Tenant) -> None:
    by_email = await upsert(client, tenant, email="a@example.com")
    adopted = await upsert(client, tenant, external_id="crm-9", email="a@example.com")
    assert adopted.status_code == 200
    assert adopted.json()["outcome"] == "updated"
    assert adopted.json()["id"] == by_email.json()["id"]
    assert adopted.json()["external_id"] == "crm-9"

    # email only finds the contact even though it now has an external id
    again = await upsert(client, tenant, email="a@example.com", locale="en-GB")
    assert again.json()["id"] == by_email.json()["id"]
    assert again.json()["outcome"] == "updated"


async def test_two_different_contacts_is_409(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await upsert(client, tenant, external_id="crm-1", email="one@example.com")
    await upsert(client, tenant, external_id="crm-2", email="two@example.com")
    conflict = await upsert(client, tenant, external_id="crm-1", email="two@example.com")
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    assert conflict.json()["errors"][0]["pointer"] == "/email"

    # a known external id with an email held by an email-only contact: still two contacts
    await upsert(client, tenant, email="three@example.com")
    conflict = await upsert(client, tenant, external_id="crm-1", email="three@example.com")
    assert conflict.status_code == 409
    # a new external id with an email owned by another external id: 409, nothing created
    conflict = await upsert(client, tenant, external_id="crm-3", email="one@example.com")
    assert conflict.status_code == 409
    assert await count(session_factory, tenant) == 3


async def test_upsert_validates_like_create(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await upsert(client, tenant, phone="+14155550123")
    assert response.status_code == 422
    response = await upsert(client, tenant, email="a@example.com", timezone="Nowhere")
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/timezone"


async def test_concurrent_upserts_make_one_row(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    responses = await asyncio.gather(
        *(
            upsert(
                client,
                tenant,
                external_id="race",
                email="race@example.com",
                attributes={"n": i % 2},
            )
            for i in range(20)
        )
    )
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert [r.status_code for r in responses].count(201) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(session_factory, tenant) == 1


async def test_concurrent_email_only_and_mixed_upserts(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    bodies: list[dict[str, Any]] = [
        {"email": "mix@example.com"}
        if i % 2
        else {"external_id": "mix", "email": "mix@example.com"}
        for i in range(20)
    ]
    responses = await asyncio.gather(*(upsert(client, tenant, **b) for b in bodies))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(session_factory, tenant) == 1
