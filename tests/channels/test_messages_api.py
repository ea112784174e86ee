"""GET /v1/messages and /v1/messages/{id}."""

from __future__ import annotations

import httpx

from app.core.clock import clock
from tests.fixtures.channels import Outbox
from tests.fixtures.tenants import Tenant, make_key


async def test_list_filters_and_get(
    client: httpx.AsyncClient, tenant: Tenant, outbox: Outbox
) -> None:
    clock.freeze()
    email = await outbox.message()
    sms = await outbox.message(channel="sms", recipient="+4915112345678", content={"text": "x"})

    everything = await client.get("/v1/messages", headers=tenant.headers)
    assert everything.status_code == 200
    assert [m["id"] for m in everything.json()["data"]] == [str(sms.id), str(email.id)]

    for query, expected in (
        ("channel=sms", [sms.id]),
        (f"contact_id={email.contact_id}", [email.id]),
        (f"enrollment_id={sms.enrollment_id}", [sms.id]),
        ("status=queued", [sms.id, email.id]),
        ("status=sent", []),
    ):
        page = await client.get(f"/v1/messages?{query}", headers=tenant.headers)
        assert [m["id"] for m in page.json()["data"]] == [str(i) for i in expected], query

    first = await client.get("/v1/messages?limit=1", headers=tenant.headers)
    cursor = first.json()["next_cursor"]
    second = await client.get(f"/v1/messages?limit=1&cursor={cursor}", headers=tenant.headers)
    assert [m["id"] for m in second.json()["data"]] == [str(email.id)]

    one = await client.get(f"/v1/messages/{email.id}", headers=tenant.headers)
    assert one.status_code == 200
    body = one.json()
    assert (body["status"], body["channel"], body["step_key"]) == ("queued", "email", "welcome")
    assert body["content"]["subject"] == "Welcome, Ana"


async def test_bad_filters_are_422_and_reading_needs_the_sequences_area(
    client: httpx.AsyncClient, tenant: Tenant, outbox: Outbox
) -> None:
    bad = await client.get("/v1/messages?status=lost", headers=tenant.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"

    token = await make_key(outbox.factory, tenant, ["contacts:read"])
    denied = await client.get("/v1/messages", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    allowed_token = await make_key(outbox.factory, tenant, ["sequences:read"])
    allowed = await client.get("/v1/messages", headers={"Authorization": f"Bearer {allowed_token}"})
    assert allowed.status_code == 200


async def test_other_workspaces_messages_are_404(
    client: httpx.AsyncClient, other_tenant: Tenant, outbox: Outbox
) -> None:
    message = await outbox.message()

    answer = await client.get(f"/v1/messages/{message.id}", headers=other_tenant.headers)

    assert answer.status_code == 404
    listed = await client.get("/v1/messages", headers=other_tenant.headers)
    assert listed.json()["data"] == []
