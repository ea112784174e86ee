"""Campaigns: the resource (create, edit with its return-to-draft rule, list), the transition
commands behind the endpoints, and launch validation. Spend lives in `spend.py`,
launch validation in `readiness.py`."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.service import Actor
from app.campaigns import readiness, transitions
from app.campaigns.lifecycle import launch
from app.campaigns.models import Campaign
from app.campaigns.repository import CampaignFilters, CampaignRepository, References
from app.campaigns.reviews import review_desk
from app.campaigns.schemas import CampaignCreate, CampaignUpdate
from app.core.clock import utcnow
from app.core.errors import Conflict, FieldError, Unprocessable
from app.core.etag import check_if_match
from app.core.pagination import PageParams, PageResult

# Fields that describe the campaign rather than what it sends, to whom, when or for how much:
# editing them never invalidates a review. Every other field is content.
METADATA_FIELDS = frozenset({"name", "description", "tags", "owner_member_id"})
# Fields PATCH cannot clear with `null` (the others reset to empty / default).
REQUIRED_FIELDS = ("name", "type", "timezone")
DEFAULT_REENTRY: dict[str, Any] = {"policy": "once"}
CENT = Decimal("0.01")


# -- the resource ----------------------------------------------------------------------------


def editable_state(campaign: Campaign) -> dict[str, Any]:
    """The client-editable fields as JSON values (what edits diff and audit)."""
    budget = None
    if campaign.budget_amount is not None:
        budget = {"amount": f"{campaign.budget_amount:.2f}", "currency": campaign.budget_currency}
    return {
        "name": campaign.name,
        "description": campaign.description,
        "objective": campaign.objective,
        "goal": campaign.goal,
        "kpis": campaign.kpis or [],
        "channels": list(campaign.channels or []),
        "include_segments": [str(s) for s in campaign.include_segments or []],
        "exclude_segments": [str(s) for s in campaign.exclude_segments or []],
        "sequence_id": _str(campaign.sequence_id),
        "sequence_version": campaign.sequence_version,
        "type": campaign.type,
        "trigger": campaign.trigger,
        "reentry": campaign.reentry or DEFAULT_REENTRY,
        "timezone": campaign.timezone,
        "start_at": campaign.start_at.isoformat() if campaign.start_at else None,
        "end_at": campaign.end_at.isoformat() if campaign.end_at else None,
        "budget": budget,
        "owner_member_id": _str(campaign.owner_member_id),
        "tags": list(campaign.tags or []),
        "approval_policy_id": _str(campaign.approval_policy_id),
    }


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _assign(campaign: Campaign, body: CampaignCreate | CampaignUpdate, fields: set[str]) -> None:
    """Copy the given request fields onto the row (JSON columns get JSON values)."""
    dumped = body.model_dump(mode="json", include=fields)
    for field in fields:
        value = getattr(body, field)
        if field == "budget":
            campaign.budget_amount = None if value is None else value.amount.quantize(CENT)
            campaign.budget_currency = None if value is None else value.currency
        elif field in ("goal", "trigger"):
            setattr(campaign, field, dumped[field])
        elif field == "reentry":
            campaign.reentry = dumped[field] if value is not None else dict(DEFAULT_REENTRY)
        elif field in ("kpis", "include_segments", "exclude_segments"):
            # JSONB lists hold strings (UUIDs as text): the driver's JSON encoder has no UUIDs.
            setattr(campaign, field, dumped[field] or [])
        elif field in ("channels", "tags"):
            setattr(campaign, field, _unique(value or []))
        else:
            setattr(campaign, field, value)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _error(pointer: str, message: str, code: str) -> FieldError:
    return FieldError(pointer=pointer, location="body", message=message, code=code)


def _shape_errors(campaign: Campaign) -> list[FieldError]:
    """Rules across fields, checked on the merged state (a PATCH may change one side)."""
    errors: list[FieldError] = []
    if campaign.start_at and campaign.end_at and campaign.end_at <= campaign.start_at:
        errors.append(_error("/end_at", "`end_at` must be after `start_at`.", "end_before_start"))
    if campaign.type == "triggered" and not campaign.trigger:
        errors.append(_error("/trigger", "a `triggered` campaign needs a `trigger`.", "missing"))
    if campaign.type == "one_off" and campaign.trigger:
        errors.append(_error("/trigger", "only `triggered` campaigns have a trigger.", "extra"))
    reentry = campaign.reentry or DEFAULT_REENTRY
    if (reentry.get("policy") == "once_per") != (reentry.get("days") is not None):
        errors.append(
            _error("/reentry/days", "`days` is required for `once_per`, only there.", "reentry")
        )
    if campaign.sequence_version is not None and campaign.sequence_id is None:
        errors.append(_error("/sequence_version", "give `sequence_id` too.", "missing"))
    return errors


async def _reference_errors(
    session: AsyncSession, campaign: Campaign, fields: set[str]
) -> list[FieldError]:
    """Everything the campaign points at must exist in its workspace (checked for the
    fields being written, so a later deletion elsewhere does not block unrelated edits)."""
    refs = References(session, campaign.workspace_id)
    errors: list[FieldError] = []
    for field in ("include_segments", "exclude_segments"):
        if field in fields:
            ids = [uuid.UUID(s) for s in getattr(campaign, field)]
            known = await refs.existing_segments(ids)
            errors += [
                _error(f"/{field}/{i}", f"No segment with id {s}.", "unknown_segment")
                for i, s in enumerate(ids)
                if s not in known
            ]
    trigger = campaign.trigger or {}
    if "trigger" in fields and trigger.get("kind") == "segment_entry":
        segment_id = uuid.UUID(trigger["segment_id"])
        if not await refs.existing_segments([segment_id]):
            errors.append(
                _error("/trigger/segment_id", f"No segment with id {segment_id}.", "unknown")
            )
    if fields & {"sequence_id", "sequence_version"} and campaign.sequence_id is not None:
        if await refs.sequence(campaign.sequence_id) is None:
            message = f"No sequence with id {campaign.sequence_id}."
            errors.append(_error("/sequence_id", message, "unknown_sequence"))
        elif campaign.sequence_version is not None and not await refs.sequence_version(
            campaign.sequence_id, campaign.sequence_version
        ):
            message = f"The sequence has no published version {campaign.sequence_version}."
            errors.append(_error("/sequence_version", message, "unknown_version"))
    owner = campaign.owner_member_id
    if "owner_member_id" in fields and owner is not None and not await refs.member_exists(owner):
        errors.append(_error("/owner_member_id", f"No member with id {owner}.", "unknown_member"))
    policy = campaign.approval_policy_id
    desk = review_desk()
    if (
        "approval_policy_id" in fields
        and policy
        and not await desk.policy_exists(session, campaign.workspace_id, policy)
    ):
        message = f"No approval policy with id {policy}."
        errors.append(_error("/approval_policy_id", message, "unknown_policy"))
    return errors


async def _validate(session: AsyncSession, campaign: Campaign, fields: set[str]) -> None:
    errors = _shape_errors(campaign) + await _reference_errors(session, campaign, fields)
    if errors:
        names = ", ".join(sorted({f"body{e.pointer}" for e in errors}))
        raise Unprocessable(f"The campaign has invalid fields: {names}.", errors=errors)


async def create_campaign(
    session: AsyncSession, workspace_id: uuid.UUID, body: CampaignCreate, actor: Actor
) -> Campaign:
    campaign = Campaign(
        name=body.name,
        type=body.type,
        timezone="UTC",
        kpis=[],
        channels=[],
        include_segments=[],
        exclude_segments=[],
        tags=[],
        reentry=dict(DEFAULT_REENTRY),
        status="draft",
        version=1,
        approval_round=0,
    )
    CampaignRepository(session, workspace_id).add(campaign)
    fields = {f for f in body.model_fields_set if getattr(body, f) is not None} | {"name", "type"}
    _assign(campaign, body, fields)
    await _validate(session, campaign, fields)
    await session.flush()
    await audit.record(
        session,
        workspace_id,
        actor,
        "campaign.created",
        entity_type="campaign",
        entity_id=campaign.id,
        changes=audit.diff({}, editable_state(campaign)),
    )
    return campaign


async def get_campaign(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID
) -> Campaign:
    return await CampaignRepository(session, workspace_id).get_or_404(campaign_id)


async def list_campaigns(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams, filters: CampaignFilters
) -> PageResult[Campaign]:
    return await CampaignRepository(session, workspace_id).filtered(params, filters)


def _refuse_nulls(body: CampaignUpdate) -> None:
    errors = [
        _error(f"/{field}", f"`{field}` cannot be null.", "missing")
        for field in REQUIRED_FIELDS
        if field in body.model_fields_set and getattr(body, field) is None
    ]
    if errors:
        raise Unprocessable("The request has null required fields.", errors=errors)


async def update_campaign(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    body: CampaignUpdate,
    *,
    if_match: str | None,
    actor: Actor,
) -> Campaign:
    """Apply an edit. Content edits of a reviewed campaign (in review, approved, scheduled)
    send it back to draft, void its approval and drop its schedule; content edits of a live
    or finished campaign are refused (409); an archived campaign is read-only."""
    campaign = await CampaignRepository(session, workspace_id).locked_or_404(campaign_id)
    check_if_match(if_match, campaign.id, campaign.version)
    _refuse_nulls(body)
    if campaign.status == "archived":
        raise Conflict(
            "An archived campaign is read-only.",
            extra={"current_status": "archived", "allowed": []},
        )
    before = editable_state(campaign)
    fields = set(body.model_fields_set)
    _assign(campaign, body, fields)
    changes = audit.diff(before, editable_state(campaign))
    if not changes:
        return campaign
    content = sorted(set(changes) - METADATA_FIELDS)
    if content and campaign.status not in ("draft", *transitions.REVIEWED):
        raise Conflict(
            f"A {campaign.status} campaign's content cannot change (fields: "
            f"{', '.join(content)}); only {', '.join(sorted(METADATA_FIELDS))} can.",
            extra={
                "current_status": campaign.status,
                "allowed": transitions.allowed_actions(campaign.status),
            },
        )
    await _validate(session, campaign, fields & set(changes))
    campaign.version += 1
    now = utcnow()
    await audit.record(
        session,
        workspace_id,
        actor,
        "campaign.updated",
        entity_type="campaign",
        entity_id=campaign.id,
        changes=changes,
    )
    # The launch functions re-read the locked row: the edit must be in it first.
    await session.flush()
    if content and campaign.status in transitions.REVIEWED:
        await _back_to_draft(session, campaign, actor, now, {"reason": "edited", "fields": content})
    await session.flush()
    return campaign


async def _back_to_draft(
    session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime, data: dict[str, Any]
) -> None:
    """Reviewed content changed (or was withdrawn): the approval no longer holds."""
    await review_desk().void_open(session, campaign.workspace_id, campaign.id, now)
    if campaign.status == "scheduled":
        await launch.unschedule(session, campaign, now)
    await transitions.apply(session, campaign, "reopen", actor, now, data=data)


# -- transitions -----------------------------------------------------------------------------


async def _locked(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, if_match: str | None
) -> Campaign:
    campaign = await CampaignRepository(session, workspace_id).locked_or_404(campaign_id)
    check_if_match(if_match, campaign.id, campaign.version)
    return campaign


async def submit(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    actor: Actor,
    if_match: str | None,
) -> Campaign:
    campaign = await _locked(session, workspace_id, campaign_id, if_match)
    transitions.check(campaign, "submit")
    now = utcnow()
    campaign.approval_round += 1
    await transitions.apply(
        session, campaign, "submit", actor, now, data={"approval_round": campaign.approval_round}
    )
    # May approve at once (no policy) through `transitions.approval_finished`.
    await review_desk().open_request(session, campaign, actor, now)
    await session.flush()
    return campaign


async def reopen(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    actor: Actor,
    if_match: str | None,
) -> Campaign:
    campaign = await _locked(session, workspace_id, campaign_id, if_match)
    transitions.check(campaign, "reopen")
    await _back_to_draft(session, campaign, actor, utcnow(), {"reason": "reopened"})
    return campaign


async def schedule(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    actor: Actor,
    if_match: str | None,
) -> Campaign:
    campaign = await _locked(session, workspace_id, campaign_id, if_match)
    transitions.check(campaign, "schedule")
    now = utcnow()
    problems = await readiness.launch_problems(session, campaign, now)
    if problems:
        raise Unprocessable(
            f"The campaign cannot be scheduled: {len(problems)} problem(s).", errors=problems
        )
    await _through_launch(session, campaign, "schedule", actor, now)
    return campaign


async def _launch_command(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    actor: Actor,
    if_match: str | None,
    *,
    action: str,
) -> Campaign:
    """A transition carried out by the launch machinery (pause, cancel)."""
    campaign = await _locked(session, workspace_id, campaign_id, if_match)
    transitions.check(campaign, action)
    await _through_launch(session, campaign, action, actor, utcnow())
    return campaign


pause = functools.partial(_launch_command, action="pause")
cancel = functools.partial(_launch_command, action="cancel")


async def resume(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    actor: Actor,
    if_match: str | None,
    *,
    overdue: launch.Overdue,
) -> Campaign:
    campaign = await _locked(session, workspace_id, campaign_id, if_match)
    transitions.check(campaign, "resume")
    await _through_launch(session, campaign, "resume", actor, utcnow(), overdue=overdue)
    return campaign


async def complete(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    actor: Actor,
    if_match: str | None,
) -> Campaign:
    """Stop new enrollments (the pending `end` action goes); live enrollments finish their
    sequences. Cancel is the way to stop them too."""
    campaign = await _locked(session, workspace_id, campaign_id, if_match)
    transitions.check(campaign, "complete")
    now = utcnow()
    await launch.unschedule(session, campaign, now)
    await transitions.apply(session, campaign, "complete", actor, now)
    return campaign


async def archive(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    actor: Actor,
    if_match: str | None,
) -> Campaign:
    campaign = await _locked(session, workspace_id, campaign_id, if_match)
    await transitions.apply(session, campaign, "archive", actor, utcnow())
    return campaign


async def _through_launch(
    session: AsyncSession,
    campaign: Campaign,
    action: str,
    actor: Actor,
    now: datetime,
    *,
    overdue: launch.Overdue = "send_now",
) -> None:
    """Run the launch machinery for `action`, then make the status move (and its audit)
    unless the launch function already made it."""
    before = campaign.status
    if action == "schedule":
        await launch.schedule(session, campaign, actor, now)
    elif action == "pause":
        await launch.pause(session, campaign, actor, now)
    elif action == "resume":
        await launch.resume(session, campaign, actor, now, overdue)
    elif action == "cancel":
        await launch.cancel(session, campaign, actor, now)
    if campaign.status == before:
        data = {"overdue": overdue} if action == "resume" else None
        await transitions.apply(session, campaign, action, actor, now, data=data)
    await session.flush()
