"""Scheduling, launching and running campaigns (called by the campaigns service's transition
endpoints and by the durable actions):

- `schedule(session, campaign, actor, now)`: approved -> scheduled: pins the sequence
  version, records `planned_start_at`, inserts the durable `launch` action at `start_at`
  (and an `end` action at `end_at` when set). Launch validation happens before, in the
  campaigns service (422 listing every problem).
- `unschedule(session, campaign, now)`: drops pending actions (edit / cancel of a scheduled
  campaign).
- `launch(session, campaign, now) -> int`: scheduled -> running, set-wise enrollment of the
  audience (one_off), `launched_at`; idempotent. Run by the actions scan when due.
- `pause`, `resume`, `cancel`: running <-> paused; cancel exits all enrollments.
- `audience(session, campaign, now)`: contact ids of include minus exclude minus suppressed
  minus no consent for the campaign's channels, as one SELECT.

Every function here locks the campaign row first (`SELECT ... FOR UPDATE`); status moves
go through `transitions.apply` (audit + `campaign.status_changed`); the action scan takes
the campaign lock before the action's, so the two never deadlock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.campaigns import transitions
from app.campaigns.lifecycle.repository import (
    cancel_pending,
    complete_check_at,
    count_rows,
    ensure_action,
    lock_campaign,
)
from app.contacts.consent.service import reachable
from app.core.errors import FieldError, Unprocessable
from app.outbox import emit
from app.outbox.catalogue import CampaignLaunched
from app.segments.membership import members_of_any
from app.sequences.engine.exits import cancel_campaign, pause_campaign, resume_campaign
from app.sequences.enrollments.service import enroll_count, version_by_id
from app.sequences.service import version_for_enrollment

if TYPE_CHECKING:
    from app.campaigns.models import Campaign
    from app.sequences.models import SequenceVersion

Overdue = Literal["send_now", "skip"]


async def schedule(session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime) -> None:
    """approved -> scheduled: pin the version, plan the start, write the durable actions.
    Idempotent: a campaign already scheduled (a repeated call) stays as it is."""
    await lock_campaign(session, campaign)
    if campaign.status == "scheduled":
        return
    transitions.check(campaign, "schedule")
    if campaign.sequence_id is None:
        raise Unprocessable(
            "The campaign has no sequence.",
            errors=[_field("/sequence_id", "A sequence is required to schedule a campaign.")],
        )
    version = await version_for_enrollment(
        session, campaign.workspace_id, campaign.sequence_id, campaign.sequence_version
    )
    start = campaign.start_at if campaign.start_at is not None else now
    campaign.sequence_version_id = version.id
    campaign.planned_start_at = start
    await ensure_action(session, campaign, "launch", start, now)
    if campaign.end_at is not None:
        await ensure_action(session, campaign, "end", campaign.end_at, now)
    data = {
        "planned_start_at": start.isoformat(),
        "end_at": campaign.end_at.isoformat() if campaign.end_at else None,
        "sequence_version_id": str(version.id),
        "sequence_version": version.number,
    }
    await transitions.apply(session, campaign, "schedule", actor, now, data=data)


async def unschedule(session: AsyncSession, campaign: Campaign, now: datetime) -> None:
    """Drop every pending action (launch, end, trigger sweeps, completion checks)."""
    await lock_campaign(session, campaign)
    await cancel_pending(session, campaign.workspace_id, campaign.id)


async def launch(session: AsyncSession, campaign: Campaign, now: datetime) -> int:
    """scheduled -> running. `one_off`: enroll the audience in one INSERT ... SELECT;
    `triggered`: start the trigger sweep. Idempotent: a campaign already launched (by a
    concurrent call that held the row lock first) returns its recorded count."""
    await lock_campaign(session, campaign)
    if campaign.status != "scheduled":
        return campaign.enrolled_count or 0
    version = await pinned_version(session, campaign)
    enrolled = 0
    if campaign.type == "triggered":
        # The trigger sweep's cursor starts at the launch: entries before it are not ours.
        await ensure_action(session, campaign, "trigger", now, now)
    else:
        contacts = await audience(session, campaign, now)
        enrolled = await enroll_count(
            session,
            campaign.workspace_id,
            version,
            contacts,
            campaign_id=campaign.id,
            source="campaign",
        )
        if campaign.end_at is None:  # otherwise the end action starts the checks
            await ensure_action(session, campaign, "complete", complete_check_at(now), now)
    campaign.launched_at = now
    campaign.enrolled_count = enrolled
    planned = campaign.planned_start_at
    data = {
        "planned_start_at": planned.isoformat() if planned else None,
        "launched_at": now.isoformat(),
        "variance_seconds": (now - planned).total_seconds() if planned else None,
        "enrolled_count": enrolled,
        "sequence_version_id": str(version.id),
    }
    await transitions.apply(session, campaign, "launch", Actor.system(), now, data=data)
    launched = CampaignLaunched(
        campaign_id=campaign.id, enrolled=enrolled, planned_at=planned, launched_at=now
    )
    await emit.emit(session, campaign.workspace_id, launched, occurred_at=now)
    return enrolled


async def pause(session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime) -> None:
    """running -> paused: live enrollments are held (the engine's scan skips them) and
    trigger sweeps wait."""
    await lock_campaign(session, campaign)
    transitions.check(campaign, "pause")
    held = await pause_campaign(session, campaign.workspace_id, campaign.id, now)
    await transitions.apply(session, campaign, "pause", actor, now, data={"held": held})


async def resume(
    session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime, overdue: Overdue
) -> None:
    """paused -> running. Sends that fell due during the pause run at once (`send_now`) or
    are passed over (`skip`)."""
    await lock_campaign(session, campaign)
    transitions.check(campaign, "resume")
    rearmed = await resume_campaign(session, campaign.workspace_id, campaign.id, now, overdue)
    data = {"rearmed": rearmed, "overdue": overdue}
    await transitions.apply(session, campaign, "resume", actor, now, data=data)


async def cancel(session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime) -> None:
    """-> cancelled: every unfinished enrollment exits (`campaign_cancelled`), pending
    actions are dropped."""
    await lock_campaign(session, campaign)
    transitions.check(campaign, "cancel")
    await cancel_pending(session, campaign.workspace_id, campaign.id)
    exited = await cancel_campaign(session, campaign.workspace_id, campaign.id, now)
    await transitions.apply(session, campaign, "cancel", actor, now, data={"exited": len(exited)})


async def audience(session: AsyncSession, campaign: Campaign, now: datetime) -> Select[Any]:
    """Contact ids: members of any include segment, minus members of any exclude segment,
    minus contacts suppressed or unsubscribed on any of the campaign's channels, minus erased
    contacts. One SELECT (no rows fetched here)."""
    includes = [uuid.UUID(str(item)) for item in campaign.include_segments or []]
    members = await members_of_any(session, campaign.workspace_id, includes) if includes else None
    return await eligible(session, campaign, members)


async def audience_size(session: AsyncSession, campaign: Campaign, now: datetime) -> int:
    """How many contacts the launch would enroll now (one COUNT over `audience`)."""
    contacts = await audience(session, campaign, now)
    return await count_rows(session, contacts)


# -- shared with the trigger sweep -----------------------------------------------------------


async def pinned_version(session: AsyncSession, campaign: Campaign) -> SequenceVersion:
    """The version pinned at scheduling (or, if none was, the one the campaign names)."""
    if campaign.sequence_version_id is not None:
        found = await version_by_id(session, campaign.workspace_id, campaign.sequence_version_id)
        if found is not None:
            return found
    if campaign.sequence_id is None:
        raise Unprocessable("The campaign has no sequence.")
    version = await version_for_enrollment(
        session, campaign.workspace_id, campaign.sequence_id, campaign.sequence_version
    )
    campaign.sequence_version_id = version.id
    return version


async def eligible(
    session: AsyncSession, campaign: Campaign, candidates: Select[Any] | None
) -> Select[Any]:
    """The contacts among `candidates` (None: nobody) the campaign may reach: not erased, not
    in an exclude segment, not suppressed and not unsubscribed on its channels."""
    excludes = [uuid.UUID(str(item)) for item in campaign.exclude_segments or []]
    excluded = await members_of_any(session, campaign.workspace_id, excludes) if excludes else None
    channels = [str(item) for item in campaign.channels or []]
    return reachable(
        session, campaign.workspace_id, candidates, excluded=excluded, channels=channels
    )


def _field(pointer: str, message: str, code: str = "invalid_value") -> FieldError:
    return FieldError(pointer=pointer, location="body", message=message, code=code)
