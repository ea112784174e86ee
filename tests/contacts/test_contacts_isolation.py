"""Another workspace's contact and import ids answer 404 on every endpoint that takes one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.tenants import Tenant


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/contacts/{contact}", None),
        ("PATCH", "/v1/contacts/{contact}", {"attributes": {"plan": "stolen"}}),
        ("DELETE", "/v1/contacts/{contact}", None),
        ("GET", "/v1/contacts/imports/{import}", None),
        ("GET", "/v1/contacts/imports/{import}/errors", None),
    ],
)
async def test_other_workspace_ids_are_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    contact = (
        await client.post(
            "/v1/contacts",
            json={"email": "victim@globex.example", "attributes": {"plan": "pro"}},
            headers=other_tenant.headers,
        )
    ).json()
    upload = (
        await client.post(
            "/v1/contacts/imports",
            content=b"email\nv2@globex.example\n",
            headers={**other_tenant.headers, "Content-Type": "text/csv"},
        )
    ).json()
    url = path.replace("{contact}", contact["id"]).replace("{import}", upload["id"])

    response = await client.request(method, url, json=body, headers=tenant.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    still = await client.get(f"/v1/contacts/{contact['id']}", headers=other_tenant.headers)
    assert still.json()["attributes"] == {"plan": "pro"}


async def test_lists_and_upserts_stay_in_their_workspace(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await client.post(
        "/v1/contacts/upsert",
        json={"external_id": "same", "email": "same@example.com"},
        headers=other_tenant.headers,
    )
    mine = await client.post(
        "/v1/contacts/upsert",
        json={"external_id": "same", "email": "same@example.com"},
        headers=tenant.headers,
    )
    assert theirs.status_code == mine.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]
    await client.post(
        "/v1/contacts/imports",
        content=b"email\nx@globex.example\n",
        headers={**other_tenant.headers, "Content-Type": "text/csv"},
    )
    listed = await client.get("/v1/contacts", headers=tenant.headers)
    assert [c["id"] for c in listed.json()["data"]] == [mine.json()["id"]]
    filtered = await client.get(
        "/v1/contacts", params={"external_id": "same"}, headers=tenant.headers
    )
    assert [c["id"] for c in filtered.json()["data"]] == [mine.json()["id"]]
    imports = await client.get("/v1/contacts/imports", headers=tenant.headers)
    assert imports.json()["data"] == []
