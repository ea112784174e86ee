from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.auth import Principal
from tests.fixtures.tenants import Tenant, make_key


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "Missing"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "must be `Bearer"),
        ({"Authorization": "Bearer "}, "must be `Bearer"),
        ({"Authorization": "Bearer not-a-key"}, "malformed"),
        ({"Authorization": "Bearer hk_" + "A" * 43}, "not recognised"),
    ],
)
async def test_bad_credentials_are_401_problems(
    client: httpx.AsyncClient, tenant: Tenant, headers: dict[str, str], fragment: str
) -> None:
    response = await client.get("/v1/workspace", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem = response.json()
    assert problem["type"] == "https://herald.dev/problems/unauthorized"
    assert fragment in problem["detail"]


async def test_revoked_key_fails_on_the_next_request(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    key = (
        await client.post(
            "/v1/api-keys", json={"name": "t", "scopes": ["read"]}, headers=tenant.headers
        )
    ).json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 200
    await client.delete(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    ("scopes", "method", "path", "allowed"),
    [
        (["read"], "GET", "/v1/members", True),
        (["read"], "POST", "/v1/members", False),
        (["write"], "POST", "/v1/members", False),  # member admin needs admin
        (["members:admin"], "POST", "/v1/members", True),
        (["contacts:admin"], "GET", "/v1/members", False),
        (["write"], "GET", "/v1/api-keys", False),
        (["api_keys:admin"], "GET", "/v1/api-keys", True),
        (["admin"], "GET", "/v1/api-keys", True),
    ],
)
async def test_scopes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
    scopes: list[str],
    method: str,
    path: str,
    allowed: bool,
) -> None:
    token = await make_key(session_factory, tenant, scopes)
    body = {"email": "new@acme.example", "name": "New"} if method == "POST" else None
    response = await client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 403
        assert response.json()["type"] == "https://herald.dev/problems/forbidden"


def test_scope_hierarchy() -> None:
    import uuid

    principal = Principal(uuid.uuid4(), uuid.uuid4(), None, frozenset({"contacts:write", "read"}))
    assert principal.allows("contacts", "read")
    assert principal.allows("contacts", "write")
    assert not principal.allows("contacts", "admin")
    assert principal.allows("members", "read")
    assert not principal.allows("members", "write")
