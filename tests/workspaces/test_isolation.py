"""Another workspace's ids answer 404 on every endpoint that takes an id."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fixtures.channels import Outbox
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


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/sequences/{sequence}", None),
        ("PATCH", "/v1/sequences/{sequence}", {"name": "Mallory"}),
        ("DELETE", "/v1/sequences/{sequence}", None),
        ("POST", "/v1/sequences/{sequence}/signing-secret", None),
        ("GET", "/v1/sequences/{sequence}/validation", None),
        ("POST", "/v1/sequences/{sequence}/publish", None),
        ("GET", "/v1/sequences/{sequence}/versions", None),
        ("GET", "/v1/sequences/{sequence}/versions/1", None),
    ],
)
async def test_other_workspace_sequences_are_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    spec = {"name": "Theirs", "definition": {"steps": [{"key": "done", "type": "exit"}]}}
    created = await client.post("/v1/sequences", json=spec, headers=other_tenant.headers)
    sequence = created.json()
    url = f"/v1/sequences/{sequence['id']}"
    await client.post(f"{url}/publish", headers=other_tenant.headers)
    # An unpublished edit, so a publish by the intruder would have something to publish.
    await client.patch(
        url,
        json={"definition": {"steps": [{"key": "end", "type": "exit"}]}},
        headers=other_tenant.headers,
    )

    response = await client.request(
        method, path.format(sequence=sequence["id"]), json=body, headers=tenant.headers
    )
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"

    theirs = await client.get(url, headers=other_tenant.headers)
    assert theirs.status_code == 200
    assert theirs.json()["name"] == "Theirs"
    assert theirs.json()["version"] == 2
    versions = await client.get(f"{url}/versions", headers=other_tenant.headers)
    assert [v["number"] for v in versions.json()["data"]] == [1]
    assert (await client.get("/v1/sequences", headers=tenant.headers)).json()["data"] == []


async def test_other_workspace_messages_are_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    theirs = await Outbox(session_factory, other_tenant).message()

    response = await client.get(f"/v1/messages/{theirs.id}", headers=tenant.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    for query in ("", f"?contact_id={theirs.contact_id}", f"?enrollment_id={theirs.enrollment_id}"):
        listed = await client.get(f"/v1/messages{query}", headers=tenant.headers)
        assert listed.json()["data"] == [], query
    mine = await client.get(f"/v1/messages/{theirs.id}", headers=other_tenant.headers)
    assert mine.status_code == 200


@pytest.mark.parametrize("body", [{}, {"draft": True}, {"version": 1}])
async def test_other_workspace_sequences_cannot_be_simulated(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, body: dict[str, object]
) -> None:
    spec = {"name": "Theirs", "definition": {"steps": [{"key": "done", "type": "exit"}]}}
    theirs = (await client.post("/v1/sequences", json=spec, headers=other_tenant.headers)).json()
    await client.post(f"/v1/sequences/{theirs['id']}/publish", headers=other_tenant.headers)

    response = await client.post(
        f"/v1/sequences/{theirs['id']}/simulate",
        json={"contact": {"email": "x@acme.example"}, **body},
        headers=tenant.headers,
    )
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_other_workspace_contacts_cannot_be_simulated(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    spec = {"name": "Mine", "definition": {"steps": [{"key": "done", "type": "exit"}]}}
    mine = (await client.post("/v1/sequences", json=spec, headers=tenant.headers)).json()
    await client.post(f"/v1/sequences/{mine['id']}/publish", headers=tenant.headers)
    contact = await client.post(
        "/v1/contacts", json={"email": "x@globex.example"}, headers=other_tenant.headers
    )

    response = await client.post(
        f"/v1/sequences/{mine['id']}/simulate",
        json={"contact_id": contact.json()["id"]},
        headers=tenant.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "/contact_id"
    # Their email is no obstacle for a hypothetical contact here (one email per workspace).
    hypothetical = await client.post(
        f"/v1/sequences/{mine['id']}/simulate",
        json={"contact": {"email": "x@globex.example"}},
        headers=tenant.headers,
    )
    assert hypothetical.status_code == 200, hypothetical.text
