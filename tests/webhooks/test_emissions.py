"""Issue 6 items 2-3: every catalogue event is written to the outbox by the code that causes
it, in the same transaction. Campaigns, approvals, budget, filters, atomicity; driven through
the real API and the real workers (engine-side events: test_emissions_engine.py, contacts and
segments: test_emissions_contacts.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from app.config import Settings
from app.contacts.consent import service as consent
from app.contacts.consent.schemas import ConsentUpdate
from app.core.clock import clock
from app.core.db import transaction
from app.core.state import AppState
from app.outbox.models import WebhookDelivery, WebhookEvent
from app.workspaces.models import Member
from tests.fixtures import campaigns as campaign_api
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.approvals import decide, make_policy, reviewer, stage
from tests.fixtures.emissions import count, delivered_types, events, of_type, subscribe
from tests.fixtures.factories import Factory
from tests.fixtures.launch import campaigns_scan
from tests.fixtures.tenants import Tenant

START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


async def _campaign(client: httpx.AsyncClient, tenant: Tenant, size: int = 2) -> dict[str, Any]:
    body = await campaign_api.world(client, tenant, size)
    body.pop("end_at")
    return await campaign_api.create(client, tenant, body)


async def test_a_campaigns_life_emits_every_campaign_event_in_order(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(START - timedelta(days=2))
    await subscribe(session_factory, tenant, ["campaign.*", "enrollment.*"])
    campaign = await _campaign(client, tenant)
    url, headers = f"/v1/campaigns/{campaign['id']}", tenant.headers

    # No approval policy: the request opens and is approved at once.
    assert (await client.post(f"{url}/submit", headers=headers)).status_code == 200
    assert (await client.post(f"{url}/schedule", headers=headers)).status_code == 200
    clock.freeze(START + timedelta(seconds=2))
    await campaigns_scan(state, settings)
    assert (await client.post(f"{url}/pause", headers=headers)).status_code == 200
    assert (await client.post(f"{url}/resume", headers=headers)).status_code == 200
    assert (await client.post(f"{url}/cancel", headers=headers)).status_code == 200

    found = await events(session_factory, tenant)
    moves = [
        (data["from_status"], data["to_status"])
        for data in of_type(found, "campaign.status_changed")
    ]
    assert moves == [
        ("draft", "in_review"),
        ("in_review", "approved"),
        ("approved", "scheduled"),
        ("scheduled", "running"),
        ("running", "paused"),
        ("paused", "running"),
        ("running", "cancelled"),
    ]
    assert {data["campaign_id"] for data in of_type(found, "campaign.status_changed")} == {
        campaign["id"]
    }
    (requested,) = of_type(found, "campaign.approval_requested")
    assert (requested["campaign_id"], requested["round"], requested["stages"]) == (
        campaign["id"],
        1,
        0,
    )
    (launched,) = of_type(found, "campaign.launched")
    assert launched["enrolled"] == 2
    assert launched["launched_at"] == "2030-01-01T09:00:02Z"
    assert launched["planned_at"] == "2030-01-01T09:00:00Z"
    # Launch: the enrollments (set-wise, one statement), then the status move, `launched`.
    kinds = [kind for kind, _ in found]
    running = kinds.index("campaign.launched")
    assert kinds[running - 3 : running] == [*["enrollment.started"] * 2, "campaign.status_changed"]
    started = of_type(found, "enrollment.started")
    exited = of_type(found, "enrollment.exited")
    assert {data["campaign_id"] for data in started + exited} == {campaign["id"]}
    assert {data["enrollment_id"] for data in started} == {data["enrollment_id"] for data in exited}
    assert {data["reason"] for data in exited} == {"campaign_cancelled"}
    assert {data["sequence_version"] for data in started} == {1}


async def test_edit_back_to_draft_and_completion_are_status_changes(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    clock.freeze(START - timedelta(days=2))
    await subscribe(session_factory, tenant, ["campaign.status_changed"])
    campaign = await _campaign(client, tenant)
    url, headers = f"/v1/campaigns/{campaign['id']}", tenant.headers
    await client.post(f"{url}/submit", headers=headers)
    edited = await client.patch(url, json={"channels": ["email", "sms"]}, headers=headers)
    assert edited.status_code == 200, edited.text
    await client.post(f"{url}/archive", headers=headers)

    moves = [
        (d["from_status"], d["to_status"])
        for _, d in await events(session_factory, tenant, "campaign.")
    ]
    assert moves == [
        ("draft", "in_review"),
        ("in_review", "approved"),
        ("approved", "draft"),
        ("draft", "archived"),
    ]


async def test_approval_requested_and_every_decision(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await subscribe(
        session_factory, tenant, ["campaign.approval_requested", "campaign.approval_decided"]
    )
    brand = [await reviewer(session_factory, tenant, n, ["brand_lead"]) for n in ("Ann", "Bo")]
    legal = await reviewer(session_factory, tenant, "Cy", ["legal"])
    await make_policy(
        client, tenant, [stage("Brand", ["brand_lead"], "all"), stage("Legal", ["legal"])]
    )
    campaign = await _campaign(client, tenant)
    url = f"/v1/campaigns/{campaign['id']}"
    assert (await client.post(f"{url}/submit", headers=tenant.headers)).status_code == 200
    inbox = await client.get("/v1/approvals", params={"reviewer": "me"}, headers=brand[0].headers)
    request_id = uuid.UUID(inbox.json()["data"][0]["id"])
    assert (await decide(client, brand[0], request_id, comment="ok")).status_code == 201
    assert (await decide(client, brand[1], request_id)).status_code == 201
    assert (await decide(client, legal, request_id, "request_changes", "fix")).status_code == 201

    found = await events(session_factory, tenant)
    (requested,) = of_type(found, "campaign.approval_requested")
    assert requested == {
        "campaign_id": campaign["id"],
        "approval_request_id": str(request_id),
        "round": 1,
        "stages": 2,
    }
    decided = of_type(found, "campaign.approval_decided")
    assert [
        (d["member_id"], d["decision"], d["comment"], d["request_status"]) for d in decided
    ] == [
        (str(brand[0].id), "approve", "ok", "pending"),
        (str(brand[1].id), "approve", None, "pending"),
        (str(legal.id), "request_changes", "fix", "changes_requested"),
    ]
    assert {d["approval_request_id"] for d in decided} == {str(request_id)}


async def test_budget_overspent_once_by_the_entry_that_crosses(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await subscribe(session_factory, tenant, ["budget.*"])
    created = await campaign_api.create(
        client, tenant, {"name": "Paid", "budget": {"amount": "100", "currency": "EUR"}}
    )
    url = f"/v1/campaigns/{created['id']}/spend"

    for amount in ("60.00", "40.00", "0.50", "10.00"):
        body = {"amount": amount, "currency": "EUR", "date": "2030-01-02"}
        assert (await client.post(url, json=body, headers=tenant.headers)).status_code == 201

    (overspent,) = of_type(await events(session_factory, tenant), "budget.overspent")
    assert overspent == {
        "campaign_id": created["id"],
        "budget": "100.00",
        "spent": "100.50",
        "currency": "EUR",
    }


async def test_filters_select_exact_family_and_everything(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    # The campaign first: its static audience segment's `segment.entered` is not the point.
    campaign = await _campaign(client, tenant)
    everything = await subscribe(session_factory, tenant, ["*"])
    family = await subscribe(session_factory, tenant, ["campaign.*"])
    exact = await subscribe(session_factory, tenant, ["campaign.approval_requested"])
    other = await subscribe(session_factory, tenant, ["contact.*", "budget.overspent"])
    disabled = await subscribe(session_factory, tenant, ["*"], enabled=False)
    await client.post(f"/v1/campaigns/{campaign['id']}/submit", headers=tenant.headers)

    campaign_types = [
        "campaign.approval_requested",
        "campaign.status_changed",
        "campaign.status_changed",
    ]
    assert await delivered_types(session_factory, everything) == campaign_types
    assert await delivered_types(session_factory, family) == campaign_types
    assert await delivered_types(session_factory, exact) == ["campaign.approval_requested"]
    assert await delivered_types(session_factory, other) == []
    assert await delivered_types(session_factory, disabled) == []
    # one event row per event, one delivery per (endpoint, event)
    assert await count(session_factory) == 3
    assert await count(session_factory, WebhookDelivery) == 7


async def test_nothing_is_stored_when_no_endpoint_subscribes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    """Another workspace's endpoint, and one of this workspace for other types, see nothing."""
    await subscribe(session_factory, other_tenant, ["*"])
    await subscribe(session_factory, tenant, ["experiment.winner_declared"])
    clock.freeze(START - timedelta(days=2))
    campaign = await _campaign(client, tenant)
    url = f"/v1/campaigns/{campaign['id']}"
    await client.post(f"{url}/submit", headers=tenant.headers)
    await client.post(f"{url}/schedule", headers=tenant.headers)
    clock.freeze(START)
    await campaigns_scan(state, settings)
    await harness.scan(state, settings)

    assert await count(session_factory) == 0
    assert await count(session_factory, WebhookDelivery) == 0


async def test_a_rolled_back_change_emits_nothing(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    """Outbox atomicity: the events are written in the change's transaction, so a rollback
    takes them away too, and no delivery job is left buffered."""
    await subscribe(session_factory, tenant, ["contact.*"])
    contact_id = uuid.UUID(await factories.contact(client, tenant, email="ana@acme.example"))
    async with session_factory() as session:
        await consent.set_consent(
            session,
            tenant.workspace_id,
            contact_id,
            "email",
            ConsentUpdate(status="unsubscribed", source="api"),
        )
        visible = await session.scalar(select(WebhookEvent.type).limit(1))
        assert visible == "contact.unsubscribed"  # written in this transaction...
        await session.rollback()
    assert await count(session_factory) == 0  # ...and gone with it
    assert await count(session_factory, WebhookDelivery) == 0


async def test_a_failing_request_after_the_emit_emits_nothing(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    """Through the API: submit moves the campaign to in_review (emitting
    `campaign.status_changed`), then the approval policy turns out unstaffable (422): the
    request's transaction rolls back, with the event."""
    legal = await reviewer(session_factory, tenant, "Cy", ["legal"])
    await make_policy(client, tenant, [stage("Legal", ["legal"])])
    async with transaction(session_factory) as session:  # the only reviewer leaves
        await session.execute(update(Member).where(Member.id == legal.id).values(reviewer_roles=[]))
    campaign = await _campaign(client, tenant)
    await subscribe(session_factory, tenant, ["*"])  # after the audience's segment.entered
    response = await client.post(f"/v1/campaigns/{campaign['id']}/submit", headers=tenant.headers)
    assert response.status_code == 422, response.text
    # The transition to in_review was applied (and emitted) before the policy check failed.
    assert await count(session_factory) == 0
    stored = await client.get(f"/v1/campaigns/{campaign['id']}", headers=tenant.headers)
    assert stored.json()["status"] == "draft"
