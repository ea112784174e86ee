"""Shared helpers for the events tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.contacts.models import Contact
from tests.fixtures.tenants import Tenant


async def contact_row(factory: async_sessionmaker[AsyncSession], contact_id: uuid.UUID) -> Contact:
    async with factory() as session:
        return (await session.execute(select(Contact).where(Contact.id == contact_id))).scalar_one()


async def contacts_of(factory: async_sessionmaker[AsyncSession], tenant: Tenant) -> list[Contact]:
    async with factory() as session:
        result = await session.execute(
            select(Contact).where(Contact.workspace_id == tenant.workspace_id)
        )
        return list(result.scalars())


async def batch(client: httpx.AsyncClient, tenant: Tenant, events: list[Any]) -> dict[str, Any]:
    response = await client.post(
        "/v1/events/batch", json={"events": events}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
