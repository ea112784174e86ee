"""Launching and running campaigns. CONTRACT (implemented by the launch work; signatures
fixed; the campaigns work calls these from its transition endpoints):

- `schedule(session, campaign, actor, now)`: approved -> scheduled: pins the sequence
  version, records `planned_start_at`, inserts the durable `launch` action at `start_at`
  (and an `end` action at `end_at` when set). Launch validation happens before, in the
  campaigns work (422 listing every problem).
- `unschedule(session, campaign, now)`: drops pending actions (edit / cancel of a scheduled
  campaign).
- `launch(session, campaign, now) -> int`: scheduled -> running, set-wise enrollment of the
  audience (one_off), `launched_at`; idempotent. Run by the actions scan when due.
- `pause(session, campaign, actor, now)`, `resume(session, campaign, actor, now, overdue)`,
  `cancel(session, campaign, actor, now)`: running <-> paused; cancel exits all enrollments.
- `audience(session, campaign, now) -> Select[uuid.UUID]`: contact ids of include minus
  exclude minus suppressed minus no consent for the campaign's channels.

Every function here locks the campaign row first (`SELECT ... FOR UPDATE`) and records its
own audit event (`campaign.scheduled|launched|paused|resumed|cancelled`); the action scan
takes the campaign lock before the action's, so the two never deadlock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, exists, false, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor, record
from app.campaigns.actions import (
    cancel_pending,
    complete_check_at,
    ensure_action,
)
from app.campaigns.models import Campaign
from app.campaigns.transitions import emit_status_changed
from app.contacts.models import Contact, ContactConsent, Suppression
from app.core.errors import FieldError, Unprocessable
from app.outbox import emit
from app.outbox.catalogue import CampaignLaunched
from app.segments.membership import members_query
from app.sequences.engine.exits import cancel_campaign, pause_campaign, resume_campaign
from app.sequences.enrollments.service import enroll_count
from app.sequences.models import SequenceVersion
from app.sequences.service import version_for_enrollment

Overdue = Literal["send_now", "skip"]

# Channel -> the contact column its suppression hash is computed from.
_ADDRESS_COLUMNS = {"email": Contact.email, "sms": Contact.phone}


async def schedule(session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime) -> None:
    """approved -> scheduled: pin the version, plan the start, write the durable actions."""
    await lock(session, campaign)
    if campaign.sequence_id is None:
        raise Unprocessable(
            "The campaign has no sequence.",
            errors=[_field("/sequence_id", "A sequence is required to schedule a campaign.")],
        )
    version = await version_for_enrollment(
        session, campaign.workspace_id, campaign.sequence_id, campaign.sequence_version
    )
    before = campaign.status
    start = campaign.start_at if campaign.start_at is not None else now
    campaign.sequence_version_id = version.id
    campaign.planned_start_at = start
    campaign.status = "scheduled"
    campaign.version += 1
    await ensure_action(session, campaign, "launch", start, now)
    if campaign.end_at is not None:
        await ensure_action(session, campaign, "end", campaign.end_at, now)
    await _audit(
        session,
        campaign,
        actor,
        "campaign.scheduled",
        before,
        data={
            "planned_start_at": start.isoformat(),
            "end_at": campaign.end_at.isoformat() if campaign.end_at else None,
            "sequence_version_id": str(version.id),
            "sequence_version": version.number,
        },
        now=now,
    )


async def unschedule(session: AsyncSession, campaign: Campaign, now: datetime) -> None:
    """Drop every pending action (launch, end, trigger sweeps, completion checks)."""
    await lock(session, campaign)
    await cancel_pending(session, campaign.workspace_id, campaign.id)


async def launch(session: AsyncSession, campaign: Campaign, now: datetime) -> int:
    """scheduled -> running. `one_off`: enroll the audience in one INSERT ... SELECT;
    `triggered`: start the trigger sweep. Idempotent: a campaign already launched (by a
    concurrent call that held the row lock first) returns its recorded count."""
    await lock(session, campaign)
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
    campaign.status = "running"
    campaign.launched_at = now
    campaign.enrolled_count = enrolled
    campaign.version += 1
    planned = campaign.planned_start_at
    await _audit(
        session,
        campaign,
        Actor.system(),
        "campaign.launched",
        "scheduled",
        data={
            "planned_start_at": planned.isoformat() if planned else None,
            "launched_at": now.isoformat(),
            "variance_seconds": (now - planned).total_seconds() if planned else None,
            "enrolled_count": enrolled,
            "sequence_version_id": str(version.id),
        },
        now=now,
    )
    launched = CampaignLaunched(
        campaign_id=campaign.id, enrolled=enrolled, planned_at=planned, launched_at=now
    )
    await emit.emit(session, campaign.workspace_id, launched, occurred_at=now)
    return enrolled


async def pause(session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime) -> None:
    """running -> paused: live enrollments are held (the engine's scan skips them) and
    trigger sweeps wait."""
    await lock(session, campaign)
    held = await pause_campaign(session, campaign.workspace_id, campaign.id, now)
    before = campaign.status
    campaign.status = "paused"
    campaign.version += 1
    await _audit(session, campaign, actor, "campaign.paused", before, data={"held": held}, now=now)


async def resume(
    session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime, overdue: Overdue
) -> None:
    """paused -> running. Sends that fell due during the pause run at once (`send_now`) or
    are passed over (`skip`)."""
    await lock(session, campaign)
    rearmed = await resume_campaign(session, campaign.workspace_id, campaign.id, now, overdue)
    before = campaign.status
    campaign.status = "running"
    campaign.version += 1
    await _audit(
        session,
        campaign,
        actor,
        "campaign.resumed",
        before,
        data={"rearmed": rearmed, "overdue": overdue},
        now=now,
    )


async def cancel(session: AsyncSession, campaign: Campaign, actor: Actor, now: datetime) -> None:
    """-> cancelled: every unfinished enrollment exits (`campaign_cancelled`), pending
    actions are dropped."""
    await lock(session, campaign)
    await cancel_pending(session, campaign.workspace_id, campaign.id)
    exited = await cancel_campaign(session, campaign.workspace_id, campaign.id, now)
    before = campaign.status
    campaign.status = "cancelled"
    campaign.finished_at = now
    campaign.version += 1
    await _audit(
        session,
        campaign,
        actor,
        "campaign.cancelled",
        before,
        data={"exited": len(exited)},
        now=now,
    )


async def audience(session: AsyncSession, campaign: Campaign, now: datetime) -> Select[uuid.UUID]:
    """Contact ids: members of any include segment, minus members of any exclude segment,
    minus contacts suppressed or unsubscribed on any of the campaign's channels, minus erased
    contacts. One SELECT (no rows fetched here)."""
    includes = [uuid.UUID(str(item)) for item in campaign.include_segments or []]
    if not includes:
        return select(Contact.id).where(false())
    members = await _union(session, campaign, includes)
    return await eligible(session, campaign, Contact.id.in_(members))


# -- shared with the trigger sweep -----------------------------------------------------------


async def lock(session: AsyncSession, campaign: Campaign) -> Campaign:
    """Lock the campaign row and refresh the object from it (a concurrent change committed
    while we waited for the lock is what we decide on)."""
    await session.execute(
        select(Campaign)
        .where(Campaign.workspace_id == campaign.workspace_id, Campaign.id == campaign.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return campaign


async def pinned_version(session: AsyncSession, campaign: Campaign) -> SequenceVersion:
    """The version pinned at scheduling (or, if none was, the one the campaign names)."""
    if campaign.sequence_version_id is not None:
        found = await session.get(SequenceVersion, campaign.sequence_version_id)
        if found is not None and found.workspace_id == campaign.workspace_id:
            return found
    if campaign.sequence_id is None:
        raise Unprocessable("The campaign has no sequence.")
    version = await version_for_enrollment(
        session, campaign.workspace_id, campaign.sequence_id, campaign.sequence_version
    )
    campaign.sequence_version_id = version.id
    return version


async def eligible(session: AsyncSession, campaign: Campaign, *where: Any) -> Select[uuid.UUID]:
    """Contacts of this workspace matching `where` that the campaign may reach: not erased,
    not in an exclude segment, not suppressed and not unsubscribed on its channels."""
    channels = [item for item in campaign.channels or [] if item in _ADDRESS_COLUMNS]
    conditions: list[Any] = [
        Contact.workspace_id == campaign.workspace_id,
        Contact.erased_at.is_(None),
        *where,
    ]
    excludes = [uuid.UUID(str(item)) for item in campaign.exclude_segments or []]
    if excludes:
        conditions.append(~Contact.id.in_(await _union(session, campaign, excludes)))
    if channels:
        conditions.append(~_suppressed(campaign.workspace_id, channels))
        conditions.append(~_unsubscribed(campaign.workspace_id, channels))
    return select(Contact.id).where(and_(*conditions))


def address_hash_sql(channel: str) -> Any:
    """`app.contacts.consent.addresses.lenient_hash(channel, stored)` computed in SQL.

    Stored emails and phones are already normalised (the contact schemas normalise on every
    write), and normalising is idempotent, so the lenient hash of a stored value is
    `sha256("<channel>:<stored>")`. `convert_to(..., 'UTF8')` hashes the UTF-8 bytes exactly
    like Python's `str.encode()`; a `::bytea` cast would instead read backslashes as escapes
    and `lower()` would follow the database collation, not Python's `str.lower`
    (tests/campaigns/test_launch.py proves the equality on tricky addresses)."""
    column = _ADDRESS_COLUMNS[channel]
    return func.encode(func.sha256(func.convert_to(f"{channel}:" + column, "UTF8")), "hex")


def _suppressed(workspace_id: uuid.UUID, channels: list[str]) -> Any:
    return or_(
        *(
            exists().where(
                Suppression.workspace_id == workspace_id,
                Suppression.channel == channel,
                Suppression.address_hash == address_hash_sql(channel),
            )
            for channel in channels
        )
    )


def _unsubscribed(workspace_id: uuid.UUID, channels: list[str]) -> Any:
    return exists().where(
        ContactConsent.workspace_id == workspace_id,
        ContactConsent.contact_id == Contact.id,
        ContactConsent.channel.in_(channels),
        ContactConsent.status == "unsubscribed",
    )


async def _union(
    session: AsyncSession, campaign: Campaign, segment_ids: list[uuid.UUID]
) -> Select[Any]:
    """Member ids of any of these segments (`members_query` each, UNION)."""
    queries = [await members_query(session, campaign.workspace_id, item) for item in segment_ids]
    if len(queries) == 1:
        return queries[0]
    return select(union(*queries).subquery().c[0])


def _field(pointer: str, message: str, code: str = "invalid_value") -> FieldError:
    return FieldError(pointer=pointer, location="body", message=message, code=code)


async def _audit(
    session: AsyncSession,
    campaign: Campaign,
    actor: Actor,
    action: str,
    before: str,
    *,
    data: dict[str, Any],
    now: datetime,
) -> None:
    """Audit a status move made here, and emit its `campaign.status_changed`."""
    await emit_status_changed(session, campaign, before, now)
    await record(
        session,
        campaign.workspace_id,
        actor,
        action,
        entity_type="campaign",
        entity_id=campaign.id,
        changes={"status": {"before": before, "after": campaign.status}},
        data=data,
    )
