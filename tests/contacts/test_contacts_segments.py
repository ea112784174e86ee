"""Contact writes (API, upsert, import) reach dynamic segment membership through
`note_contacts_changed`, processed by a real worker."""

from __future__ import annotations

import httpx

from app.config import Settings
from tests.fixtures.tenants import Tenant
from tests.fixtures.worker import run_jobs


async def members(client: httpx.AsyncClient, tenant: Tenant, segment_id: str) -> set[str]:
    response = await client.get(f"/v1/segments/{segment_id}/members", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return {m["email"] for m in response.json()["data"]}


async def test_writes_refresh_dynamic_segments(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    segment = await client.post(
        "/v1/segments",
        json={
            "name": "Pro",
            "kind": "dynamic",
            "rule": {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}},
        },
        headers=tenant.headers,
    )
    assert segment.status_code == 201, segment.text
    segment_id = segment.json()["id"]

    created = await client.post(
        "/v1/contacts",
        json={"email": "api@example.com", "attributes": {"plan": "pro"}},
        headers=tenant.headers,
    )
    await client.post(
        "/v1/contacts/upsert",
        json={"email": "upsert@example.com", "attributes": {"plan": "pro"}},
        headers=tenant.headers,
    )
    await client.post(
        "/v1/contacts/imports",
        content=b"email,attributes.plan\nimported@example.com,pro\nother@example.com,basic\n",
        headers={**tenant.headers, "Content-Type": "text/csv"},
    )
    await run_jobs(settings)
    assert await members(client, tenant, segment_id) == {
        "api@example.com",
        "upsert@example.com",
        "imported@example.com",
    }

    await client.patch(
        f"/v1/contacts/{created.json()['id']}",
        json={"attributes": {"plan": "basic"}},
        headers=tenant.headers,
    )
    await run_jobs(settings)
    assert await members(client, tenant, segment_id) == {
        "upsert@example.com",
        "imported@example.com",
    }
