"""Contacts tests' helpers: a stored contact with an email, consent through the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.fixtures.factories import Factory, stored_contact
from tests.fixtures.tenants import Tenant


async def make_contact(factory: Factory, tenant: Tenant, **fields: Any) -> uuid.UUID:
    """A stored contact with an email unless given one."""
    fields.setdefault("email", f"c{uuid.uuid4().hex[:8]}@example.com")
    return await stored_contact(factory, tenant, **fields)


async def put_consent(
    client: httpx.AsyncClient, tenant: Tenant, contact_id: uuid.UUID, channel: str, **body: Any
) -> httpx.Response:
    body.setdefault("source", "signup_form")
    return await client.put(
        f"/v1/contacts/{contact_id}/consent/{channel}", json=body, headers=tenant.headers
    )
