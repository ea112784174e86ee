"""The campaigns resource: CRUD, ETag / If-Match, validation pointers, list filters and
pages, edit rules (return to draft, 409 on live content), scopes, and cross-tenant 404s."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.core.db import transaction
from app.workspaces.models import Member
from tests.fixtures.campaigns import END, START, actions, audit_rows, create, force_status, world
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant, make_key

UNKNOWN = "0190f3c8-8d2e-7b61-9a55-000000000001"


async def test_create_get_and_list(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = await world(client, tenant)
    body |= {
        "description": "Lapsed buyers",
        "objective": "Win them back",
        "goal": {"event_type": "purchase", "window": "P7D"},
        "kpis": [{"metric": "conversion_rate", "target": 0.05}],
        "tags": ["q4", "winback", "q4"],
        "owner_member_id": str(tenant.owner_id),
    }
    response = await client.post("/v1/campaigns", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["ETag"] == created["etag"] == f'"{created["id"]}.1"'
    assert response.headers["Location"] == f"/v1/campaigns/{created['id']}"
    assert created["status"] == "draft"
    assert created["allowed_transitions"] == ["submit", "archive"]
    assert created["goal"] == {"event_type": "purchase", "window": "P7D"}
    assert created["budget"] == {"amount": "1000.00", "currency": "EUR"}
    assert created["tags"] == ["q4", "winback"]
    assert created["reentry"] == {"policy": "once"}
    assert created["start_at"] == "2030-01-01T09:00:00Z"
    assert created["variance_seconds"] is None

    fetched = await client.get(f"/v1/campaigns/{created['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json() == created
    listed = await client.get("/v1/campaigns", headers=tenant.headers)
    assert [c["id"] for c in listed.json()["data"]] == [created["id"]]


async def test_created_and_updated_are_audited_with_a_diff(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await create(client, tenant, {"name": "A"})
    url = f"/v1/campaigns/{created['id']}"
    await client.patch(url, json={"name": "B", "tags": ["x"]}, headers=tenant.headers)
    [updated] = await audit_rows(session_factory, created["id"], "campaign.updated")
    assert updated.changes == {
        "name": {"before": "A", "after": "B"},
        "tags": {"before": [], "after": ["x"]},
    }
    assert (updated.actor_type, updated.member_id) == ("member", tenant.owner_id)
    assert await actions(session_factory, created["id"]) == [
        "campaign.created",
        "campaign.updated",
    ]


async def test_triggered_campaign_shape(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = {
        "name": "Welcome",
        "type": "triggered",
        "trigger": {"kind": "event", "event_type": "signup"},
        "reentry": {"policy": "once_per", "days": 30},
    }
    created = await create(client, tenant, body)
    assert created["trigger"] == {"kind": "event", "event_type": "signup", "where": []}
    assert created["reentry"] == {"policy": "once_per", "days": 30}

    missing = await client.post(
        "/v1/campaigns", json={"name": "T", "type": "triggered"}, headers=tenant.headers
    )
    assert missing.status_code == 422
    assert [e["pointer"] for e in missing.json()["errors"]] == ["/trigger"]


@pytest.mark.parametrize(
    ("patch", "pointer"),
    [
        ({"timezone": "Mars/Olympus"}, "/timezone"),
        ({"budget": {"amount": "-1", "currency": "EUR"}}, "/budget/amount"),
        ({"budget": {"amount": "10", "currency": "eur"}}, "/budget/currency"),
        ({"channels": ["email", "fax"]}, "/channels/1"),
        ({"goal": {"event_type": "purchase", "window": "seven days"}}, "/goal/window"),
        ({"kpis": [{"metric": "ctr"}]}, "/kpis/0/target"),
        ({"type": "recurring"}, "/type"),
        ({"reentry": {"policy": "sometimes"}}, "/reentry/policy"),
        ({"status": "running"}, "/status"),
        ({"trigger": {"kind": "cron"}}, "/trigger"),
    ],
)
async def test_shape_errors_have_pointers(
    client: httpx.AsyncClient, tenant: Tenant, patch: dict[str, Any], pointer: str
) -> None:
    response = await client.post(
        "/v1/campaigns", json={"name": "X", **patch}, headers=tenant.headers
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert pointer in [e["pointer"] for e in response.json()["errors"]]


async def test_references_and_dates_are_checked_together(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await world(client, other_tenant)
    body = {
        "name": "X",
        "include_segments": [UNKNOWN],
        "exclude_segments": theirs["include_segments"],
        "sequence_id": theirs["sequence_id"],
        "owner_member_id": str(other_tenant.owner_id),
        "approval_policy_id": UNKNOWN,
        "start_at": END,
        "end_at": START,
        "reentry": {"policy": "once"},
    }
    response = await client.post("/v1/campaigns", json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert sorted(e["pointer"] for e in response.json()["errors"]) == [
        "/approval_policy_id",
        "/end_at",
        "/exclude_segments/0",
        "/include_segments/0",
        "/owner_member_id",
        "/sequence_id",
    ]
    listed = await client.get("/v1/campaigns", headers=tenant.headers)
    assert listed.json()["data"] == []


async def test_unknown_sequence_version_and_reentry_days(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = await world(client, tenant)
    response = await client.post(
        "/v1/campaigns",
        json={**body, "sequence_version": 9, "reentry": {"policy": "once_per"}},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert sorted(e["pointer"] for e in response.json()["errors"]) == [
        "/reentry/days",
        "/sequence_version",
    ]


async def test_patch_checks_the_merged_dates(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create(client, tenant, {"name": "X", "start_at": START})
    url = f"/v1/campaigns/{created['id']}"
    response = await client.patch(url, json={"end_at": START}, headers=tenant.headers)
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/end_at"]
    response = await client.patch(url, json={"name": None}, headers=tenant.headers)
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/name"]
    unchanged = await client.get(url, headers=tenant.headers)
    assert unchanged.json()["version"] == 1


async def test_etag_if_match(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create(client, tenant, {"name": "X"})
    url = f"/v1/campaigns/{created['id']}"
    first = await client.patch(
        url, json={"name": "Y"}, headers={**tenant.headers, "If-Match": created["etag"]}
    )
    assert first.status_code == 200
    assert first.headers["ETag"] == f'"{created["id"]}.2"'
    stale = await client.patch(
        url, json={"name": "Z"}, headers={**tenant.headers, "If-Match": created["etag"]}
    )
    assert stale.status_code == 412
    assert stale.json()["current_etag"] == first.headers["ETag"]
    stale_submit = await client.post(
        f"{url}/submit", headers={**tenant.headers, "If-Match": created["etag"]}
    )
    assert stale_submit.status_code == 412
    same = await client.patch(url, json={"name": "Y"}, headers=tenant.headers)
    assert same.json()["version"] == 2  # a no-op edit changes nothing
    current = await client.get(url, headers=tenant.headers)
    assert current.json()["name"] == "Y"
    assert current.json()["status"] == "draft"


async def test_list_filters_and_pages(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    async with transaction(session_factory) as session:
        member = Member(
            workspace_id=tenant.workspace_id, email="m@acme.example", name="M", role="editor"
        )
        session.add(member)
    owner = str(member.id)
    a = await create(client, tenant, {"name": "A", "tags": ["q4"], "start_at": START})
    b = await create(
        client, tenant, {"name": "B", "owner_member_id": owner, "start_at": "2030-02-01T00:00:00Z"}
    )
    c = await create(client, tenant, {"name": "C", "tags": ["q4", "vip"]})
    await force_status(session_factory, c["id"], "running")

    async def names(query: dict[str, Any]) -> list[str]:
        response = await client.get("/v1/campaigns", params=query, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["data"]]

    assert await names({}) == ["C", "B", "A"]
    assert await names({"status": "running"}) == ["C"]
    assert await names({"status": "draft"}) == ["B", "A"]
    assert await names({"owner_member_id": owner}) == ["B"]
    assert await names({"tag": "q4"}) == ["C", "A"]
    assert await names({"tag": "vip"}) == ["C"]
    assert await names({"start_after": START, "start_before": "2030-02-01T00:00:00Z"}) == ["A"]
    assert await names({"start_after": "2030-01-15T00:00:00Z"}) == ["B"]
    assert await names({"created_after": b["created_at"]}) == ["C", "B"]
    assert await names({"created_before": b["created_at"]}) == ["A"]
    # The old names are gone (issue 17: one convention), not silently ignored filters.
    assert await names({"created_from": b["created_at"]}) == ["C", "B", "A"]
    bad = await client.get("/v1/campaigns?status=nope", headers=tenant.headers)
    assert bad.status_code == 422

    first = await client.get("/v1/campaigns?limit=2", headers=tenant.headers)
    page = first.json()
    assert [item["name"] for item in page["data"]] == ["C", "B"]
    second = await client.get(
        f"/v1/campaigns?limit=2&cursor={page['next_cursor']}", headers=tenant.headers
    )
    assert [item["id"] for item in second.json()["data"]] == [a["id"]]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize("status", ["in_review", "approved", "scheduled"])
async def test_content_edit_of_a_reviewed_campaign_returns_it_to_draft(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory, status: str
) -> None:
    created = await create(client, tenant, await world(client, tenant))
    await force_status(session_factory, created["id"], status)
    url = f"/v1/campaigns/{created['id']}"
    metadata = await client.patch(url, json={"tags": ["renamed"]}, headers=tenant.headers)
    assert metadata.status_code == 200
    assert metadata.json()["status"] == status

    response = await client.patch(
        url, json={"budget": {"amount": "2000", "currency": "EUR"}}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "draft"
    assert response.json()["budget"] == {"amount": "2000.00", "currency": "EUR"}
    [returned] = await audit_rows(session_factory, created["id"], "campaign.returned_to_draft")
    assert returned.changes == {"status": {"before": status, "after": "draft"}}
    assert returned.data == {"reason": "edited", "fields": ["budget"]}


@pytest.mark.parametrize("status", ["running", "paused", "completed", "cancelled"])
async def test_content_edit_of_a_live_or_finished_campaign_is_409(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory, status: str
) -> None:
    created = await create(client, tenant, {"name": "X", "channels": ["email"]})
    await force_status(session_factory, created["id"], status)
    url = f"/v1/campaigns/{created['id']}"
    refused = await client.patch(url, json={"channels": ["sms"]}, headers=tenant.headers)
    assert refused.status_code == 409
    assert refused.json()["status"] == 409
    assert refused.json()["current_status"] == status
    assert "channels" in refused.json()["detail"]
    renamed = await client.patch(
        url, json={"name": "Y", "description": "d"}, headers=tenant.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["status"] == status


async def test_archived_campaign_is_read_only(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create(client, tenant, {"name": "X"})
    url = f"/v1/campaigns/{created['id']}"
    archived = await client.post(f"{url}/archive", headers=tenant.headers)
    assert archived.status_code == 200
    assert archived.json()["archived_at"] is not None
    assert archived.json()["allowed_transitions"] == []
    assert (await client.patch(url, json={"name": "Y"}, headers=tenant.headers)).status_code == 409
    assert (await client.delete(url, headers=tenant.headers)).status_code == 405


async def test_read_key_cannot_write(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await create(
        client, tenant, {"name": "X", "budget": {"amount": 1, "currency": "EUR"}}
    )
    url = f"/v1/campaigns/{created['id']}"
    token = await make_key(session_factory, tenant, ["campaigns:read"])
    reader = {"Authorization": f"Bearer {token}"}
    assert (await client.get(url, headers=reader)).status_code == 200
    assert (await client.get("/v1/campaigns", headers=reader)).status_code == 200
    assert (await client.get(f"{url}/budget", headers=reader)).status_code == 200
    assert (await client.get(f"{url}/spend", headers=reader)).status_code == 200
    writes = [
        ("POST", "/v1/campaigns", {"name": "Y"}),
        ("PATCH", url, {"name": "Y"}),
        ("POST", f"{url}/submit", None),
        ("POST", f"{url}/archive", None),
        ("POST", f"{url}/spend", {"amount": "1", "currency": "EUR", "date": "2030-01-01"}),
    ]
    for method, path, body in writes:
        response = await client.request(method, path, json=body, headers=reader)
        assert response.status_code == 403, (method, path, response.text)
    other = await make_key(session_factory, tenant, ["contacts:write"])
    response = await client.get(url, headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 403


CROSS_TENANT: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("PATCH", "", {"name": "Mallory"}),
    ("POST", "/submit", None),
    ("POST", "/reopen", None),
    ("POST", "/schedule", None),
    ("POST", "/pause", None),
    ("POST", "/resume", {"overdue": "send_now"}),
    ("POST", "/cancel", None),
    ("POST", "/complete", None),
    ("POST", "/archive", None),
    ("GET", "/spend", None),
    ("POST", "/spend", {"amount": "5", "currency": "EUR", "date": "2030-01-02"}),
    ("GET", "/budget", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), CROSS_TENANT)
async def test_other_workspace_campaigns_are_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: Factory,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    theirs = await create(
        client, other_tenant, {"name": "Theirs", "budget": {"amount": "10", "currency": "EUR"}}
    )
    url = f"/v1/campaigns/{theirs['id']}"
    response = await client.request(method, url + suffix, json=body, headers=tenant.headers)
    assert response.status_code == 404, response.text

    again = await client.get(url, headers=other_tenant.headers)
    assert again.json() == theirs
    assert await actions(session_factory, theirs["id"]) == ["campaign.created"]
    assert (await client.get(f"{url}/spend", headers=other_tenant.headers)).json()["data"] == []
    mine = await client.get("/v1/campaigns", headers=tenant.headers)
    assert mine.json()["data"] == []


async def test_unknown_campaign_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(f"/v1/campaigns/{uuid.uuid4()}", headers=tenant.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
