"""Another workspace's segment ids answer 404 on every segments endpoint that takes an id,
and nothing changes on the other side."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fixtures.rows import contact_row, insert_rows
from tests.fixtures.tenants import Tenant

PRO = {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/segments/{segment}", None),
        ("PATCH", "/v1/segments/{segment}", {"name": "Mallory"}),
        ("DELETE", "/v1/segments/{segment}", None),
        ("GET", "/v1/segments/{segment}/count", None),
        ("GET", "/v1/segments/{segment}/members", None),
        ("POST", "/v1/segments/{segment}/members", {"external_ids": ["victim"]}),
        ("POST", "/v1/segments/{segment}/members/remove", {"external_ids": ["victim"]}),
        ("GET", "/v1/segments/{segment}/changes", None),
        ("GET", "/v1/segments/{segment}/history", None),
    ],
)
@pytest.mark.parametrize("kind", ["static", "dynamic"])
async def test_other_workspace_segments_are_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    kind: str,
) -> None:
    await insert_rows(
        session_factory,
        contacts=[contact_row(other_tenant.workspace_id, external_id="victim")],
    )
    spec: dict[str, Any] = {"name": "Victims", "kind": kind}
    if kind == "dynamic":
        spec["rule"] = PRO
    segment = (await client.post("/v1/segments", json=spec, headers=other_tenant.headers)).json()
    if kind == "static":
        await client.post(
            f"/v1/segments/{segment['id']}/members",
            json={"external_ids": ["victim"]},
            headers=other_tenant.headers,
        )

    response = await client.request(
        method, path.format(segment=segment["id"]), json=body, headers=tenant.headers
    )

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    after = await client.get(f"/v1/segments/{segment['id']}", headers=other_tenant.headers)
    assert after.json()["name"] == "Victims"
    assert after.json()["version"] == 1
    assert after.json()["member_count"] == (1 if kind == "static" else 0)


async def test_rules_cannot_reference_another_workspace(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = (
        await client.post(
            "/v1/segments", json={"name": "T", "kind": "static"}, headers=other_tenant.headers
        )
    ).json()
    rule = {"segment": {"id": theirs["id"]}}
    created = await client.post(
        "/v1/segments", json={"name": "Mine", "rule": rule}, headers=tenant.headers
    )
    assert created.status_code == 422
    preview = await client.post("/v1/segments/preview", json={"rule": rule}, headers=tenant.headers)
    assert preview.status_code == 422


async def test_static_members_only_match_own_contacts(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    theirs = contact_row(other_tenant.workspace_id, external_id="shared", email="s@x.example")
    await insert_rows(session_factory, contacts=[theirs])
    mine = (
        await client.post(
            "/v1/segments", json={"name": "M", "kind": "static"}, headers=tenant.headers
        )
    ).json()
    result = (
        await client.post(
            f"/v1/segments/{mine['id']}/members",
            json={
                "contact_ids": [str(theirs["id"])],
                "external_ids": ["shared"],
                "emails": ["s@x.example"],
            },
            headers=tenant.headers,
        )
    ).json()
    assert result["matched"] == 0
    assert result["member_count"] == 0
    listed = (await client.get("/v1/segments", headers=tenant.headers)).json()["data"]
    assert [s["id"] for s in listed] == [mine["id"]]
