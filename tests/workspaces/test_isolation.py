"""Another workspace's ids answer 404 on every endpoint that takes an id."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.tenants import Tenant


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/members/{member}", None),
        ("PATCH", "/v1/members/{member}", {"name": "Mallory"}),
        ("DELETE", "/v1/members/{member}", None),
        ("GET", "/v1/api-keys/{key}", None),
        ("DELETE", "/v1/api-keys/{key}", None),
    ],
)
async def test_other_workspace_ids_are_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    member = (
        await client.post(
            "/v1/members",
            json={"email": "v@globex.example", "name": "Victim"},
            headers=other_tenant.headers,
        )
    ).json()
    key = (
        await client.post(
            "/v1/api-keys",
            json={"name": "victim", "scopes": ["read"]},
            headers=other_tenant.headers,
        )
    ).json()
    url = path.format(member=member["id"], key=key["id"])

    response = await client.request(method, url, json=body, headers=tenant.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    # and nothing changed on the other side
    still = await client.get(f"/v1/members/{member['id']}", headers=other_tenant.headers)
    assert still.json()["name"] == "Victim"
    assert (await client.get(f"/v1/api-keys/{key['id']}", headers=other_tenant.headers)).json()[
        "revoked_at"
    ] is None


async def test_lists_show_only_own_workspace(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await client.post(
        "/v1/members", json={"email": "x@globex.example", "name": "X"}, headers=other_tenant.headers
    )
    members = (await client.get("/v1/members", headers=tenant.headers)).json()["data"]
    keys = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["data"]
    assert [m["email"] for m in members] == ["owner@acme.example"]
    assert len(keys) == 1
