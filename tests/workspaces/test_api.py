from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fixtures.tenants import Tenant, make_key

PROBLEM = "application/problem+json"


async def test_workspace_comes_from_the_key(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await client.get("/v1/workspace", headers=tenant.headers)
    theirs = await client.get("/v1/workspace", headers=other_tenant.headers)
    assert mine.status_code == 200
    assert mine.json()["id"] == str(tenant.workspace_id)
    assert mine.json()["name"] == "Acme"
    assert theirs.json()["id"] == str(other_tenant.workspace_id)


async def test_rename_workspace(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch(
        "/v1/workspace", json={"name": "Acme Growth"}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert (await client.get("/v1/workspace", headers=tenant.headers)).json()[
        "name"
    ] == "Acme Growth"


async def test_member_lifecycle(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = {
        "email": "Dana@Acme.example",
        "name": "Dana",
        "role": "editor",
        "reviewer_roles": ["brand_lead"],
    }
    created = await client.post("/v1/members", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    member = created.json()
    assert member["email"] == "dana@acme.example"
    assert member["reviewer_roles"] == ["brand_lead"]

    duplicate = await client.post("/v1/members", json=body, headers=tenant.headers)
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == PROBLEM

    patched = await client.patch(
        f"/v1/members/{member['id']}",
        json={"role": "admin", "reviewer_roles": ["compliance"]},
        headers=tenant.headers,
    )
    assert patched.json()["role"] == "admin"
    assert patched.json()["reviewer_roles"] == ["compliance"]
    assert patched.json()["name"] == "Dana"

    listed = await client.get("/v1/members", headers=tenant.headers)
    assert {m["email"] for m in listed.json()["data"]} == {
        "owner@acme.example",
        "dana@acme.example",
    }

    deleted = await client.delete(f"/v1/members/{member['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert (
        await client.get(f"/v1/members/{member['id']}", headers=tenant.headers)
    ).status_code == 404


async def test_owner_cannot_be_removed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.delete(f"/v1/members/{tenant.owner_id}", headers=tenant.headers)
    assert response.status_code == 409


async def test_removing_a_member_revokes_their_keys(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    member = (
        await client.post(
            "/v1/members", json={"email": "r@acme.example", "name": "R"}, headers=tenant.headers
        )
    ).json()
    token = await make_key(session_factory, tenant, ["read"], member_id=uuid.UUID(member["id"]))
    bound = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/workspace", headers=bound)).status_code == 200
    await client.delete(f"/v1/members/{member['id']}", headers=tenant.headers)
    assert (await client.get("/v1/workspace", headers=bound)).status_code == 401


async def test_member_validation_names_the_field(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/members",
        json={"email": "not-an-email", "name": "X", "role": "emperor", "surprise": 1},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == PROBLEM
    pointers = {error["pointer"] for error in problem["errors"]}
    assert pointers == {"/email", "/role", "/surprise"}
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_api_key_lifecycle(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post(
        "/v1/api-keys",
        json={"name": "CRM", "scopes": ["contacts:write", "read"]},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith("hk_")
    assert key["prefix"] == key["key"][:11]
    assert key["scopes"] == ["contacts:write", "read"]

    fetched = await client.get(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert "key" not in fetched.json()
    listed = await client.get("/v1/api-keys", headers=tenant.headers)
    assert all("key" not in item and "key_hash" not in item for item in listed.json()["data"])

    new_headers = {"Authorization": f"Bearer {key['key']}"}
    used = await client.get("/v1/workspace", headers=new_headers)
    assert used.status_code == 200
    assert (await client.get(f"/v1/api-keys/{key['id']}", headers=tenant.headers)).json()[
        "last_used_at"
    ]

    revoked = await client.delete(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    after = await client.get("/v1/workspace", headers=new_headers)
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]


async def test_unknown_scope_is_rejected(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["superuser"]}, headers=tenant.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/scopes"


async def test_key_bound_to_unknown_member_is_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/api-keys",
        json={"name": "x", "scopes": ["read"], "member_id": str(uuid.uuid4())},
        headers=tenant.headers,
    )
    assert response.status_code == 404


async def test_pagination_walks_every_member_once(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for index in range(7):
        await client.post(
            "/v1/members",
            json={"email": f"m{index}@acme.example", "name": f"M{index}"},
            headers=tenant.headers,
        )
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/members", params=params, headers=tenant.headers)).json()
        seen.extend(member["email"] for member in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8
    assert len(set(seen)) == 8
    assert seen[0] == "m6@acme.example"  # newest first


async def test_bad_cursor_is_a_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/members", params={"cursor": "!!!"}, headers=tenant.headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
