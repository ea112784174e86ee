"""The campaign state machine through its endpoints: every illegal transition answers 409
with the current status and the allowed list, the legal paths (with approvals and the
launch machinery as real peers), launch validation listing every problem, variance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.approvals.models import ApprovalRequest
from app.audit.service import Actor
from app.campaigns.lifecycle import launch
from app.campaigns.models import CAMPAIGN_STATUSES, Campaign, CampaignAction
from app.campaigns.transitions import approval_finished
from app.core.clock import clock
from app.core.db import transaction
from tests.fixtures.campaigns import START, actions, audit_rows, create, force_status, world
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

ACTIONS = ("submit", "reopen", "schedule", "pause", "resume", "complete", "cancel", "archive")
# Written out here, not read from the code under test.
ALLOWED: dict[str, set[str]] = {
    "draft": {"submit", "archive"},
    "in_review": {"reopen"},
    "approved": {"reopen", "schedule"},
    "scheduled": {"reopen", "cancel"},
    "running": {"pause", "complete", "cancel"},
    "paused": {"resume", "complete", "cancel"},
    "completed": {"archive"},
    "cancelled": {"archive"},
    "archived": set(),
}
ILLEGAL = [
    (status, action)
    for status in CAMPAIGN_STATUSES
    for action in ACTIONS
    if action not in ALLOWED[status]
]


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
async def test_illegal_transition_is_409_with_allowed_list(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    status: str,
    action: str,
) -> None:
    created = await create(client, tenant, {"name": "X"})
    await force_status(session_factory, created["id"], status)
    body = {"overdue": "send_now"} if action == "resume" else None
    url = f"/v1/campaigns/{created['id']}/{action}"
    response = await client.post(url, json=body, headers=tenant.headers)
    assert response.status_code == 409, response.text
    problem = response.json()
    # RFC 9457: `status` is the HTTP status; the campaign's own is `current_status`.
    assert problem["status"] == 409
    assert problem["current_status"] == status
    assert set(problem["allowed"]) == ALLOWED[status]
    assert status in problem["detail"]
    after = await client.get(f"/v1/campaigns/{created['id']}", headers=tenant.headers)
    assert after.json()["status"] == status
    assert set(after.json()["allowed_transitions"]) == ALLOWED[status]


async def test_submit_without_a_policy_approves_at_once(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await create(client, tenant, {"name": "X"})
    response = await client.post(f"/v1/campaigns/{created['id']}/submit", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    assert response.json()["approval_round"] == 1
    assert await actions(session_factory, created["id"]) == [
        "campaign.created",
        "campaign.submitted",
        "campaign.approved",
    ]


async def _policy(client: httpx.AsyncClient, tenant: Tenant) -> None:
    stage = {"name": "Owner", "reviewers": {"members": [str(tenant.owner_id)]}, "rule": "any"}
    response = await client.post(
        "/v1/approval-policies",
        json={"name": "Review", "is_default": True, "stages": [stage]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text


async def _requests(factory: Factory, campaign_id: str) -> list[tuple[int, str]]:
    async with factory() as session:
        rows = await session.execute(
            select(ApprovalRequest.round, ApprovalRequest.status)
            .where(ApprovalRequest.campaign_id == uuid.UUID(campaign_id))
            .order_by(ApprovalRequest.round)
        )
        return [(r, s) for r, s in rows.all()]


async def test_review_approve_schedule_launch_pause_resume_complete_archive(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await _policy(client, tenant)
    start = datetime(2030, 1, 1, 9, tzinfo=UTC)
    clock.freeze(start - timedelta(hours=1))
    created = await create(client, tenant, await world(client, tenant))
    url = f"/v1/campaigns/{created['id']}"
    submitted = await client.post(f"{url}/submit", headers=tenant.headers)
    assert submitted.json()["status"] == "in_review"
    [pending] = (await client.get("/v1/approvals", headers=tenant.headers)).json()["data"]
    decided = await client.post(
        f"/v1/approvals/{pending['id']}/decisions",
        json={"decision": "approve", "comment": "ok"},
        headers=tenant.headers,
    )
    assert decided.status_code in (200, 201), decided.text
    assert (await client.get(url, headers=tenant.headers)).json()["status"] == "approved"

    scheduled = await client.post(f"{url}/schedule", headers=tenant.headers)
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    assert scheduled.json()["planned_start_at"] == START
    assert scheduled.json()["sequence_version_id"] is not None

    clock.advance(timedelta(hours=1, seconds=2))
    async with transaction(session_factory) as session:
        row = await session.get(Campaign, uuid.UUID(created["id"]))
        assert row is not None
        assert await launch.launch(session, row, clock.now()) == 2
    running = (await client.get(url, headers=tenant.headers)).json()
    assert running["status"] == "running"
    assert running["launched_at"] == "2030-01-01T09:00:02Z"
    assert running["variance_seconds"] == 2.0
    assert running["enrolled_count"] == 2

    assert (await client.post(f"{url}/pause", headers=tenant.headers)).json()["status"] == "paused"
    skip = await client.post(f"{url}/resume", json={"overdue": "skip"}, headers=tenant.headers)
    assert (skip.status_code, skip.json()["status"]) == (200, "running")
    completed = await client.post(f"{url}/complete", headers=tenant.headers)
    assert completed.json()["status"] == "completed"
    assert completed.json()["finished_at"] is not None
    archived = await client.post(f"{url}/archive", headers=tenant.headers)
    assert archived.json()["status"] == "archived"
    trail = await actions(session_factory, created["id"])
    assert trail == [
        "campaign.created",
        "campaign.submitted",
        "campaign.approved",
        "campaign.scheduled",
        "campaign.launched",
        "campaign.paused",
        "campaign.resumed",
        "campaign.completed",
        "campaign.archived",
    ]


async def test_content_edit_voids_the_approval_and_drops_the_schedule(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await create(client, tenant, await world(client, tenant))
    url = f"/v1/campaigns/{created['id']}"
    await client.post(f"{url}/submit", headers=tenant.headers)  # no policy: approved
    assert (await client.post(f"{url}/schedule", headers=tenant.headers)).status_code == 200
    edited = await client.patch(
        url, json={"end_at": "2030-02-01T00:00:00Z"}, headers=tenant.headers
    )
    assert edited.json()["status"] == "draft"
    async with session_factory() as session:
        pending = await session.execute(
            select(CampaignAction).where(
                CampaignAction.campaign_id == uuid.UUID(created["id"]),
                CampaignAction.done_at.is_(None),
            )
        )
        assert pending.scalars().all() == []

    await _policy(client, tenant)
    resubmitted = await client.post(f"{url}/submit", headers=tenant.headers)
    assert resubmitted.json()["status"] == "in_review"
    assert resubmitted.json()["approval_round"] == 2
    edited = await client.patch(url, json={"channels": ["email", "sms"]}, headers=tenant.headers)
    assert edited.json()["status"] == "draft"
    assert await _requests(session_factory, created["id"]) == [(1, "voided"), (2, "voided")]


async def test_reopen_withdraws_a_review(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await _policy(client, tenant)
    created = await create(client, tenant, {"name": "X"})
    url = f"/v1/campaigns/{created['id']}"
    await client.post(f"{url}/submit", headers=tenant.headers)
    reopened = await client.post(f"{url}/reopen", headers=tenant.headers)
    assert reopened.json()["status"] == "draft"
    assert await _requests(session_factory, created["id"]) == [(1, "voided")]
    [event] = await audit_rows(session_factory, created["id"], "campaign.returned_to_draft")
    assert event.data == {"reason": "reopened"}


@pytest.mark.parametrize(
    ("outcome", "action"),
    [
        ("approved", "campaign.approved"),
        ("rejected", "campaign.rejected"),
        ("changes_requested", "campaign.changes_requested"),
    ],
)
async def test_approval_finished(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    outcome: Any,
    action: str,
) -> None:
    created = await create(client, tenant, {"name": "X"})
    await force_status(session_factory, created["id"], "in_review")
    async with transaction(session_factory) as session:
        await approval_finished(
            session,
            tenant.workspace_id,
            uuid.UUID(created["id"]),
            outcome=outcome,
            comments=["Fix the subject"],
            actor=Actor.system(),
            now=clock.now(),
        )
    after = (await client.get(f"/v1/campaigns/{created['id']}", headers=tenant.headers)).json()
    assert after["status"] == ("approved" if outcome == "approved" else "draft")
    [event] = await audit_rows(session_factory, created["id"], action)
    assert event.data == {"approval_round": 0, "comments": ["Fix the subject"]}


async def test_schedule_validation_lists_every_problem(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    bare = await create(client, tenant, {"name": "Bare"})
    await force_status(session_factory, bare["id"], "approved")
    response = await client.post(f"/v1/campaigns/{bare['id']}/schedule", headers=tenant.headers)
    assert response.status_code == 422
    assert sorted((e["pointer"], e["code"]) for e in response.json()["errors"]) == [
        ("/channels", "no_channels"),
        ("/include_segments", "empty_audience"),
        ("/sequence_id", "missing"),
        ("/start_at", "missing"),
    ]

    body = await world(client, tenant, size=0)
    sms = await client.post(
        "/v1/templates",
        json={"name": "S", "channel": "sms", "content": {"text": "Hi"}},
        headers=tenant.headers,
    )
    await client.post(f"/v1/templates/{sms.json()['id']}/publish", headers=tenant.headers)
    sequence = await client.post(
        "/v1/sequences",
        json={
            "name": "SMS",
            "definition": {
                "steps": [
                    {"key": "a", "type": "send", "channel": "sms", "template_id": sms.json()["id"]}
                ]
            },
        },
        headers=tenant.headers,
    )
    body |= {
        "sequence_id": sequence.json()["id"],  # never published
        "start_at": "2020-01-01T00:00:00Z",
        "end_at": "2020-01-02T00:00:00Z",
    }
    broken = await create(client, tenant, body)
    await force_status(session_factory, broken["id"], "approved")
    response = await client.post(f"/v1/campaigns/{broken['id']}/schedule", headers=tenant.headers)
    assert response.status_code == 422
    assert sorted((e["pointer"], e["code"]) for e in response.json()["errors"]) == [
        ("/end_at", "end_too_early"),
        ("/include_segments", "empty_audience"),
        ("/sequence_id", "sequence_not_published"),
        ("/start_at", "start_in_past"),
    ]
    await client.post(f"/v1/sequences/{sequence.json()['id']}/publish", headers=tenant.headers)
    response = await client.post(f"/v1/campaigns/{broken['id']}/schedule", headers=tenant.headers)
    assert ("/channels", "channel_not_configured") in [
        (e["pointer"], e["code"]) for e in response.json()["errors"]
    ]
    still = await client.get(f"/v1/campaigns/{broken['id']}", headers=tenant.headers)
    assert still.json()["status"] == "approved"


async def test_cancel_a_scheduled_campaign(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await create(client, tenant, await world(client, tenant))
    url = f"/v1/campaigns/{created['id']}"
    await client.post(f"{url}/submit", headers=tenant.headers)
    await client.post(f"{url}/schedule", headers=tenant.headers)
    cancelled = await client.post(f"{url}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert (await actions(session_factory, created["id"]))[-1] == "campaign.cancelled"
    assert len(await audit_rows(session_factory, created["id"], "campaign.cancelled")) == 1


async def test_archived_campaign_conflicts_keep_the_numeric_status(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    """Observed: 409s put the campaign's status string in RFC 9457's `status` member."""
    created = await create(client, tenant, {"name": "X"})
    await force_status(session_factory, created["id"], "archived")
    url = f"/v1/campaigns/{created['id']}"
    spend = {"amount": "1.00", "currency": "EUR", "date": "2026-12-02", "channel": "email"}
    for response in (
        await client.patch(url, json={"name": "Y"}, headers=tenant.headers),
        await client.post(f"{url}/spend", json=spend, headers=tenant.headers),
    ):
        assert response.status_code == 409, response.text
        problem = response.json()
        assert (problem["status"], problem["current_status"]) == (409, "archived")
        assert problem["allowed"] == []
