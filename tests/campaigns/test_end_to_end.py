"""Issue 5, end to end through the API: a campaign goes from draft through a hybrid approval
chain (a stage of two brand leads who must all approve, then legal or finance, any one) to a
launch at its start time that enrolls its segment minus exclusions, suppressions and
unsubscribes, and the audit trail shows every step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from app.channels.models import Message
from app.config import Settings
from app.core.clock import clock
from app.core.state import AppState
from app.sequences.models import Enrollment
from tests.fixtures import campaigns as campaign_api
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.approvals import decide, make_policy, reviewer, stage
from tests.fixtures.factories import Factory
from tests.fixtures.launch import campaigns_scan
from tests.fixtures.tenants import Tenant

START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


async def test_draft_to_hybrid_approval_to_launch_with_audit_trail(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(START - timedelta(days=2))
    headers = tenant.headers
    contacts = [
        await factories.contact(client, tenant, email=f"p{i}@acme.example") for i in range(30)
    ]
    excluded, suppressed, unsubscribed = contacts[:4], contacts[4:7], contacts[7:9]
    audience = await factories.static_segment(client, tenant, contacts)
    exclusion = await factories.static_segment(client, tenant, excluded)
    for index in range(4, 7):
        response = await client.post(
            "/v1/suppressions",
            json={"channel": "email", "address": f"p{index}@acme.example", "reason": "manual"},
            headers=headers,
        )
        assert response.status_code == 201, response.text
    for contact_id in unsubscribed:
        response = await client.put(
            f"/v1/contacts/{contact_id}/consent/email",
            json={"status": "unsubscribed", "source": "preference_center"},
            headers=headers,
        )
        assert response.status_code == 200, response.text

    brand = [await reviewer(session_factory, tenant, n, ["brand_lead"]) for n in ("Ann", "Bo")]
    legal = await reviewer(session_factory, tenant, "Cy", ["legal"])
    finance = await reviewer(session_factory, tenant, "Di", ["finance"])
    await make_policy(
        client,
        tenant,
        [
            stage("Brand", ["brand_lead"], "all"),
            stage("Legal or finance", ["legal", "finance"], "any"),
        ],
    )
    body = {
        "name": "New year",
        "objective": "Reactivate lapsed buyers",
        "channels": ["email"],
        "include_segments": [audience],
        "exclude_segments": [exclusion],
        "sequence_id": await campaign_api.sequence(client, tenant),
        "type": "one_off",
        "timezone": "Europe/Paris",
        "start_at": START.isoformat(),
        "budget": {"amount": "500.00", "currency": "EUR"},
    }
    campaign = await campaign_api.create(client, tenant, body)
    url = f"/v1/campaigns/{campaign['id']}"

    submitted = await client.post(f"{url}/submit", headers=headers)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "in_review"
    inbox = await client.get("/v1/approvals", params={"reviewer": "me"}, headers=brand[0].headers)
    (request,) = inbox.json()["data"]
    assert request["campaign"]["name"] == "New year"  # context attached for the reviewer
    request_id = uuid.UUID(request["id"])
    # Stage 2 reviewers cannot decide before stage 1 is done.
    assert (await decide(client, legal, request_id)).status_code == 403
    assert (await decide(client, brand[0], request_id, comment="on brand")).status_code == 201
    assert (await client.get(url, headers=headers)).json()["status"] == "in_review"
    assert (await decide(client, brand[1], request_id)).status_code == 201
    assert (await decide(client, finance, request_id, comment="budget ok")).status_code == 201
    assert (await client.get(url, headers=headers)).json()["status"] == "approved"

    scheduled = await client.post(f"{url}/schedule", headers=headers)
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"

    clock.freeze(START + timedelta(seconds=3))  # the scan runs a little after the start
    await campaigns_scan(state, settings)
    await harness.scan(state, settings)
    launched = (await client.get(url, headers=headers)).json()
    assert launched["status"] == "running"
    assert launched["launched_at"] == "2030-01-01T09:00:03Z"
    assert launched["variance_seconds"] == 3.0
    reachable = set(contacts) - set(excluded) - set(suppressed) - set(unsubscribed)
    async with session_factory() as session:
        enrolled = set(
            (
                await session.execute(
                    select(Enrollment.contact_id).where(
                        Enrollment.campaign_id == uuid.UUID(campaign["id"])
                    )
                )
            ).scalars()
        )
        sent = await session.scalar(
            select(func.count())
            .select_from(Message)
            .join(Enrollment, Enrollment.id == Message.enrollment_id)
            .where(Enrollment.campaign_id == uuid.UUID(campaign["id"]))
        )
    assert {str(item) for item in enrolled} == reachable
    assert sent == len(reachable) == 21

    trail = await client.get(
        "/v1/audit-events",
        params={"entity_id": campaign["id"], "limit": 100},
        headers=headers,
    )
    assert trail.status_code == 200, trail.text
    actions = [event["action"] for event in reversed(trail.json()["data"])]
    domain = [a for a in actions if a.startswith("campaign.")]
    assert domain == [
        "campaign.created",
        "campaign.submitted",
        "campaign.approved",
        "campaign.scheduled",
        "campaign.launched",
    ]
    decisions = await client.get(
        "/v1/audit-events", params={"action": "approval.*"}, headers=headers
    )
    assert len(decisions.json()["data"]) == 3
