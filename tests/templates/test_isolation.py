"""Another workspace's template ids (and contact ids, in preview) answer 404 on every
templates endpoint that takes an id, and nothing changes on the other side."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fixtures.rows import contact_row, insert_rows
from tests.fixtures.tenants import Tenant

CONTENT = {"text": "Hi {{ contact.email }}"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/templates/{template}", None),
        ("PATCH", "/v1/templates/{template}", {"name": "Mallory"}),
        ("DELETE", "/v1/templates/{template}", None),
        ("POST", "/v1/templates/{template}/lock", None),
        ("POST", "/v1/templates/{template}/unlock", None),
        ("POST", "/v1/templates/{template}/publish", None),
        ("GET", "/v1/templates/{template}/versions", None),
        ("GET", "/v1/templates/{template}/versions/1", None),
        ("POST", "/v1/templates/{template}/preview", {"contact": {}}),
    ],
)
async def test_other_workspace_templates_are_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    spec = {"name": "Theirs", "channel": "sms", "content": CONTENT}
    template = (await client.post("/v1/templates", json=spec, headers=other_tenant.headers)).json()
    url = f"/v1/templates/{template['id']}"
    await client.post(f"{url}/publish", headers=other_tenant.headers)

    response = await client.request(
        method, path.format(template=template["id"]), json=body, headers=tenant.headers
    )
    assert response.status_code == 404, response.text

    theirs = await client.get(url, headers=other_tenant.headers)
    assert theirs.status_code == 200
    assert theirs.json()["name"] == "Theirs"
    assert theirs.json()["version"] == 1
    versions = await client.get(f"{url}/versions", headers=other_tenant.headers)
    assert [v["number"] for v in versions.json()["data"]] == [1]
    mine = await client.get("/v1/templates", headers=tenant.headers)
    assert mine.json()["data"] == []


async def test_preview_with_another_workspace_contact_is_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    victim = contact_row(other_tenant.workspace_id, email="victim@globex.example")
    await insert_rows(session_factory, contacts=[victim])
    spec = {"name": "Mine", "channel": "sms", "content": CONTENT}
    template = (await client.post("/v1/templates", json=spec, headers=tenant.headers)).json()
    response = await client.post(
        f"/v1/templates/{template['id']}/preview",
        json={"contact_id": str(victim["id"])},
        headers=tenant.headers,
    )
    assert response.status_code == 404
    assert "victim" not in response.text
