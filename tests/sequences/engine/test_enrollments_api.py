"""The enrollments API: validation, exit, listing, timeline, scopes and tenant isolation."""

from __future__ import annotations

import httpx

from app.config import Settings
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant, make_key

WAIT = {"steps": [{"key": "nap", "type": "wait", "duration": "P1D"}, {"key": "x", "type": "exit"}]}


async def _enrolled(client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, str, str]:
    sequence_id = await factories.published_sequence(client, tenant, WAIT)
    contact_id = await factories.contact(client, tenant, email="ada@example.com")
    return sequence_id, contact_id, await factories.enroll(client, tenant, sequence_id, contact_id)


async def test_enroll_by_email_or_external_id_and_bad_references(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sequence_id = await factories.published_sequence(client, tenant, WAIT)
    await factories.contact(client, tenant, email="ada@example.com", external_id="crm-1")
    url = f"/v1/sequences/{sequence_id}/enrollments"
    by_email = await client.post(url, json={"email": "ADA@example.com"}, headers=tenant.headers)
    assert by_email.status_code == 201, by_email.text
    by_external = await client.post(url, json={"external_id": "crm-1"}, headers=tenant.headers)
    assert (by_external.status_code, by_external.json()["id"]) == (200, by_email.json()["id"])

    unknown = await client.post(url, json={"external_id": "nobody"}, headers=tenant.headers)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "/external_id"
    both = await client.post(
        url, json={"external_id": "crm-1", "email": "ada@example.com"}, headers=tenant.headers
    )
    assert both.status_code == 422
    no_version = await client.post(
        url, json={"external_id": "crm-1", "version": 9}, headers=tenant.headers
    )
    assert no_version.status_code == 422
    assert no_version.json()["errors"][0]["pointer"] == "/version"


async def test_a_draft_only_sequence_cannot_enroll(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/v1/sequences", json={"name": "Draft", "definition": WAIT}, headers=tenant.headers
    )
    contact_id = await factories.contact(client, tenant, email="ada@example.com")
    response = await client.post(
        f"/v1/sequences/{created.json()['id']}/enrollments",
        json={"contact_id": contact_id},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert "publish" in response.json()["detail"]


async def test_exit_then_409_and_a_new_enrollment_may_start(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    sequence_id, contact_id, enrollment_id = await _enrolled(client, tenant)
    await harness.run_jobs(settings)
    url = f"/v1/enrollments/{enrollment_id}/exit"
    first = await client.post(url, json={"reason": "sales_took_over"}, headers=tenant.headers)
    assert first.status_code == 200, first.text
    assert (first.json()["state"], first.json()["exit_reason"]) == (
        "exited",
        "manual:sales_took_over",
    )
    assert first.json()["next_action_at"] is None
    again = await client.post(url, json={}, headers=tenant.headers)
    assert again.status_code == 409
    assert "exited" in again.json()["detail"]
    # Finished enrollments do not block a new one.
    await factories.enroll(client, tenant, sequence_id, contact_id)
    listed = await client.get(
        f"/v1/sequences/{sequence_id}/enrollments",
        params={"state": "exited"},
        headers=tenant.headers,
    )
    assert [item["id"] for item in listed.json()["data"]] == [enrollment_id]
    steps = await factories.outcomes(session_factory, enrollment_id)
    assert steps[-1] == ("x", "exited")


async def test_read_keys_read_and_cannot_write(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    sequence_id, contact_id, enrollment_id = await _enrolled(client, tenant)
    token = await make_key(session_factory, tenant, ["sequences:read"])
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        await client.get(f"/v1/enrollments/{enrollment_id}", headers=headers)
    ).status_code == 200
    denied = await client.post(
        f"/v1/sequences/{sequence_id}/enrollments", json={"contact_id": contact_id}, headers=headers
    )
    assert denied.status_code == 403
    exit_denied = await client.post(
        f"/v1/enrollments/{enrollment_id}/exit", json={}, headers=headers
    )
    assert exit_denied.status_code == 403


async def test_another_workspaces_enrollments_answer_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    sequence_id, contact_id, enrollment_id = await _enrolled(client, tenant)
    theirs = other_tenant.headers
    for method, url, body in (
        ("GET", f"/v1/enrollments/{enrollment_id}", None),
        ("GET", f"/v1/enrollments/{enrollment_id}/timeline", None),
        ("POST", f"/v1/enrollments/{enrollment_id}/exit", {}),
        ("GET", f"/v1/sequences/{sequence_id}/enrollments", None),
        ("POST", f"/v1/sequences/{sequence_id}/enrollments", {"contact_id": contact_id}),
    ):
        response = await client.request(method, url, json=body, headers=theirs)
        assert response.status_code == 404, (method, url, response.text)
    # Their own sequence cannot enroll our contact either: the contact is not theirs.
    own = await factories.published_sequence(client, other_tenant, WAIT)
    response = await client.post(
        f"/v1/sequences/{own}/enrollments", json={"contact_id": contact_id}, headers=theirs
    )
    assert response.status_code == 422
    mine = await client.get(f"/v1/enrollments/{enrollment_id}", headers=tenant.headers)
    assert mine.json()["state"] == "active"
