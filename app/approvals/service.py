"""Approvals: review rounds of campaigns, run by policies.

- `open_request(session, campaign, actor, now)`: a submitted campaign (draft -> in_review,
  `campaign.approval_round` already incremented) gets its round's request: its policy (its
  own, else the workspace default; none at all -> approved at once) plus the gates that
  apply (audience count, budget). When no stage applies, the request is approved at once and
  `campaigns.transitions.approval_finished` is called here.
- `void_open(session, workspace_id, campaign_id, now)`: an edit of an approved or in-review
  campaign voids its pending or approved request of the current round.
- A decision that completes the last stage (approved), rejects or requests changes calls
  `app.campaigns.transitions.approval_finished(...)`.

Campaigns reach the first two through their `ReviewDesk` protocol (`app/approvals/desk.py`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.approvals.models import ApprovalDecision, ApprovalPolicy, ApprovalRequest
from app.approvals.repository import (
    CampaignLookup,
    DecisionRepository,
    MemberLookup,
    PolicyRepository,
    RequestRepository,
)
from app.approvals.resolution import Facts, needs_audience, resolve
from app.audit.service import Actor, record
from app.campaigns import transitions
from app.campaigns.lifecycle import launch
from app.core.errors import Conflict, FieldError, Forbidden, Unprocessable
from app.core.ids import new_id
from app.outbox import emit
from app.outbox.catalogue import CampaignApprovalDecided, CampaignApprovalRequested

if TYPE_CHECKING:
    from app.approvals.schemas import DecisionCreate
    from app.campaigns.models import Campaign
    from app.campaigns.transitions import ApprovalOutcome
    from app.core.pagination import PageParams, PageResult


async def policy_of(session: AsyncSession, campaign: Campaign) -> ApprovalPolicy | None:
    """The campaign's own policy, else the workspace default, else none."""
    policies = PolicyRepository(session, campaign.workspace_id)
    if campaign.approval_policy_id is not None:
        own = await policies.get(campaign.approval_policy_id)
        if own is not None:
            return own
    return await policies.default()


def _check_staffed(stages: list[dict[str, Any]]) -> None:
    """A stage that could never complete (fewer eligible reviewers than it needs) refuses the
    submission now rather than leaving a review that waits for ever."""
    errors = [
        FieldError(
            pointer=f"/approval/stages/{index}",
            location="body",
            message=(
                f"Stage {stage['name']!r} needs {max(stage['required'], 1)} approval(s) but "
                f"has {len(stage['eligible'])} eligible reviewer(s)."
            ),
            code="understaffed_stage",
        )
        for index, stage in enumerate(stages)
        if len(stage["eligible"]) < max(stage["required"], 1)
    ]
    if errors:
        raise Unprocessable("The approval policy cannot be satisfied.", errors=errors)


async def open_request(
    session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime
) -> ApprovalRequest:
    policy = await policy_of(session, campaign)
    stages: list[dict[str, Any]] = []
    if policy is not None:
        count = (
            await launch.audience_size(session, campaign, now)
            if needs_audience(policy.gates)
            else None
        )
        members = await MemberLookup(session, campaign.workspace_id).all()
        stages = resolve(
            policy.stages, policy.gates or [], members, Facts(count, campaign.budget_amount)
        )
        _check_staffed(stages)
    if stages:
        stages[0]["started_at"] = now.isoformat()
    request = RequestRepository(session, campaign.workspace_id).add(
        ApprovalRequest(
            id=new_id(),
            campaign_id=campaign.id,
            round=campaign.approval_round,
            stages=stages,
            current_stage=0,
            status="pending" if stages else "approved",
            created_at=now,
            stage_started_at=now,
            decided_at=None if stages else now,
        )
    )
    await session.flush()
    requested = CampaignApprovalRequested(
        campaign_id=campaign.id,
        approval_request_id=request.id,
        round=request.round,
        stages=len(stages),
    )
    await emit.emit(session, campaign.workspace_id, requested, occurred_at=now)
    if not stages:
        await transitions.approval_finished(
            session,
            campaign.workspace_id,
            campaign.id,
            outcome="approved",
            comments=[],
            actor=actor,
            now=now,
        )
    return request


async def void_open(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, now: datetime
) -> None:
    campaign = await CampaignLookup(session, workspace_id).get(campaign_id)
    if campaign is None:
        return
    request = await RequestRepository(session, workspace_id).open_of_campaign(
        campaign_id, campaign.approval_round
    )
    if request is not None:
        request.status = "voided"
        request.decided_at = now
        await session.flush()


def _comments(decisions: list[ApprovalDecision]) -> list[str]:
    return [d.comment for d in decisions if d.comment]


async def _finish(
    session: AsyncSession,
    request: ApprovalRequest,
    outcome: ApprovalOutcome,
    actor: Actor,
    now: datetime,
) -> None:
    request.status = outcome
    request.decided_at = now
    decisions = await DecisionRepository(session, request.workspace_id).of_requests([request.id])
    await session.flush()
    await transitions.approval_finished(
        session,
        request.workspace_id,
        request.campaign_id,
        outcome=outcome,
        comments=_comments(decisions),
        actor=actor,
        now=now,
    )


def _approvals_in_stage(decisions: list[ApprovalDecision], stage: int) -> int:
    return sum(1 for d in decisions if d.stage == stage and d.decision == "approve")


async def decide(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    request_id: uuid.UUID,
    data: DecisionCreate,
    *,
    actor: Actor,
    now: datetime,
) -> ApprovalRequest:
    """One reviewer's decision on the current stage. The request row is locked, so
    concurrent decisions on one request serialise (the stage rule sees every earlier one)."""
    member_id = actor.member_id
    if member_id is None:
        raise Forbidden("Only a key bound to a member can decide on an approval.")
    request = await RequestRepository(session, workspace_id).locked_with_campaign(request_id)
    if request.status != "pending":
        raise Conflict(f"The approval request is {request.status}; it takes no more decisions.")
    decisions_repo = DecisionRepository(session, workspace_id)
    if await decisions_repo.by_reviewer(request.id, member_id):
        raise Conflict("You already decided in this review round.")
    stages = [dict(stage) for stage in request.stages]
    stage = stages[request.current_stage]
    if str(member_id) not in stage["eligible"]:
        raise Forbidden(f"You are not a reviewer of the current stage ({stage['name']!r}).")
    decision = decisions_repo.add(
        ApprovalDecision(
            id=new_id(),
            request_id=request.id,
            stage=request.current_stage,
            member_id=member_id,
            decision=data.decision,
            comment=data.comment,
            created_at=now,
        )
    )
    await session.flush()
    await record(
        session,
        workspace_id,
        actor,
        "approval.decided",
        entity_type="approval_request",
        entity_id=request.id,
        data={
            "campaign_id": str(request.campaign_id),
            "round": request.round,
            "stage": request.current_stage,
            "stage_name": stage["name"],
            "decision": decision.decision,
            "comment": decision.comment,
        },
    )
    if data.decision != "approve":
        stage["completed_at"] = now.isoformat()
        request.stages = stages
        outcome: ApprovalOutcome = "rejected" if data.decision == "reject" else "changes_requested"
        await _emit_decided(session, request, decision, outcome, now)
        await _finish(session, request, outcome, actor, now)
        return request
    decisions = await decisions_repo.of_requests([request.id])
    if _approvals_in_stage(decisions, request.current_stage) < stage["required"]:
        await _emit_decided(session, request, decision, request.status, now)
        return request
    stage["completed_at"] = now.isoformat()
    if request.current_stage + 1 == len(stages):
        request.stages = stages
        await _emit_decided(session, request, decision, "approved", now)
        await _finish(session, request, "approved", actor, now)
        return request
    await _emit_decided(session, request, decision, request.status, now)
    request.current_stage += 1
    stages[request.current_stage]["started_at"] = now.isoformat()
    request.stage_started_at = now
    request.stages = stages
    await session.flush()
    return request


async def _emit_decided(
    session: AsyncSession,
    request: ApprovalRequest,
    decision: ApprovalDecision,
    request_status: str,
    now: datetime,
) -> None:
    """`campaign.approval_decided`, before the campaign moves (so a receiver sees the
    decision, then the `campaign.status_changed` it caused)."""
    data = CampaignApprovalDecided.model_validate(
        {
            "campaign_id": request.campaign_id,
            "approval_request_id": request.id,
            "member_id": decision.member_id,
            "decision": decision.decision,
            "comment": decision.comment,
            "request_status": request_status,
        }
    )
    await emit.emit(session, request.workspace_id, data, occurred_at=now)


async def get_request(
    session: AsyncSession, workspace_id: uuid.UUID, request_id: uuid.UUID
) -> ApprovalRequest:
    return await RequestRepository(session, workspace_id).get_or_404(request_id)


async def list_requests(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    params: PageParams,
    status: str | None,
    reviewer: uuid.UUID | None,
) -> PageResult[ApprovalRequest]:
    return await RequestRepository(session, workspace_id).listing(params, status, reviewer)
