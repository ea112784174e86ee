"""Campaign state changes: the transition table, `apply` (the one writer of
`campaigns.status`) and `approval_finished`.

`approval_finished(session, workspace_id, campaign_id, *, outcome, comments, actor, now)` is
called by the approvals domain when the current round's request ends: `approved` -> the
campaign goes in_review -> approved; `rejected` or `changes_requested` -> back to draft,
with the comments recorded in the audit event (the review history is the approval requests
plus the audit trail). Each transition is audited.

The table below is the only statement of which action moves which status where, and
`apply` the only code that writes a status: the endpoints, the lifecycle's moves (schedule,
launch, pause, resume, cancel, complete) and the 409 problem's `allowed` list all go
through it, so they cannot disagree (tests/test_architecture.py checks that nothing else
assigns `.status` of a campaign).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.service import Actor
from app.campaigns.models import Campaign
from app.campaigns.repository import CampaignRepository
from app.core.errors import Conflict
from app.outbox import emit
from app.outbox.catalogue import CampaignStatusChanged

ApprovalOutcome = Literal["approved", "rejected", "changes_requested"]


@dataclass(frozen=True)
class Transition:
    sources: tuple[str, ...]
    target: str
    audit_action: str
    # Public actions have an endpoint (`POST /v1/campaigns/{id}/<action>`); the others are
    # driven by approvals (`approve`, `reject`, `request_changes`) or launch (`launch`).
    public: bool = True


TRANSITIONS: dict[str, Transition] = {
    "submit": Transition(("draft",), "in_review", "campaign.submitted"),
    "approve": Transition(("in_review",), "approved", "campaign.approved", public=False),
    "reject": Transition(("in_review",), "draft", "campaign.rejected", public=False),
    "request_changes": Transition(
        ("in_review",), "draft", "campaign.changes_requested", public=False
    ),
    # Withdraw from review / approval / the schedule to edit freely.
    "reopen": Transition(
        ("in_review", "approved", "scheduled"), "draft", "campaign.returned_to_draft"
    ),
    "schedule": Transition(("approved",), "scheduled", "campaign.scheduled"),
    "launch": Transition(("scheduled",), "running", "campaign.launched", public=False),
    "pause": Transition(("running",), "paused", "campaign.paused"),
    "resume": Transition(("paused",), "running", "campaign.resumed"),
    "complete": Transition(("running", "paused"), "completed", "campaign.completed"),
    "cancel": Transition(("scheduled", "running", "paused"), "cancelled", "campaign.cancelled"),
    "archive": Transition(("draft", "completed", "cancelled"), "archived", "campaign.archived"),
}
PUBLIC_ACTIONS: tuple[str, ...] = tuple(name for name, t in TRANSITIONS.items() if t.public)
# Statuses whose content was reviewed: a content edit sends them back to draft.
REVIEWED = ("in_review", "approved", "scheduled")
_OUTCOME_ACTION: dict[str, str] = {
    "approved": "approve",
    "rejected": "reject",
    "changes_requested": "request_changes",
}


def allowed_actions(status: str) -> list[str]:
    """The public transitions (endpoint names) allowed from `status`, in table order."""
    return [name for name in PUBLIC_ACTIONS if status in TRANSITIONS[name].sources]


def check(campaign: Campaign, action: str) -> Transition:
    """The transition, or 409 naming the current status and the allowed transitions."""
    transition = TRANSITIONS[action]
    if campaign.status not in transition.sources:
        allowed = allowed_actions(campaign.status)
        listed = ", ".join(allowed) or "none"
        raise Conflict(
            f"Cannot {action.replace('_', ' ')} a campaign that is {campaign.status}; "
            f"allowed from {campaign.status}: {listed}.",
            extra={"current_status": campaign.status, "allowed": allowed},
        )
    return transition


async def apply(
    session: AsyncSession,
    campaign: Campaign,
    action: str,
    actor: Actor,
    now: datetime,
    *,
    data: dict[str, Any] | None = None,
) -> None:
    """Move the campaign along `action` (checked), bump its version and audit the change."""
    transition = check(campaign, action)
    before = campaign.status
    campaign.status = transition.target
    campaign.version += 1
    if transition.target in ("completed", "cancelled"):
        campaign.finished_at = now
    if transition.target == "archived":
        campaign.archived_at = now
    await audit.record(
        session,
        campaign.workspace_id,
        actor,
        transition.audit_action,
        entity_type="campaign",
        entity_id=campaign.id,
        changes=audit.diff({"status": before}, {"status": transition.target}),
        data=data,
    )
    await _emit_status_changed(session, campaign, before, now)
    await session.flush()


async def _emit_status_changed(
    session: AsyncSession, campaign: Campaign, before: str, now: datetime
) -> None:
    """`campaign.status_changed`, in the transaction of the move (`apply` calls it)."""
    if before == campaign.status:
        return
    data = CampaignStatusChanged(
        campaign_id=campaign.id, name=campaign.name, from_status=before, to_status=campaign.status
    )
    await emit.emit(session, campaign.workspace_id, data, occurred_at=now)


async def approval_finished(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    outcome: ApprovalOutcome,
    comments: list[str],
    actor: Actor,
    now: datetime,
) -> None:
    campaign = await CampaignRepository(session, workspace_id).locked_or_404(campaign_id)
    data: dict[str, Any] = {"approval_round": campaign.approval_round}
    if comments:
        data["comments"] = comments
    await apply(session, campaign, _OUTCOME_ACTION[outcome], actor, now, data=data)
