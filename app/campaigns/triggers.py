"""Triggered campaigns: while running, enroll contacts who enter the trigger segment or do
the trigger event, subject to the campaign's audience filters and re-entry policy.

A periodic sweep, not a hook: each run of the campaign's `trigger` action reads the new
segment journal rows (`segment_membership_changes`, `entered`) or events since its cursor
and enrolls them in one INSERT ... SELECT. The sweep re-reads `OVERLAP` before its cursor,
so a journal row or event committed late (a long transaction) is still seen; re-reading is
harmless because an entry counts as served once the contact has an enrollment in this
campaign started at or after it (or an unfinished one). Re-entry policy (`reentry`):

- `once`: a contact is enrolled at most once per campaign, ever.
- `once_per` (`days`: N): not again within N days of the contact's last enrollment start.
- `always` (the default): every entry, unless the contact is still enrolled.

Entries before the launch or at/after the end time never enroll. Event triggers key on the
event's `occurred_at` (the indexed column): an event reported more than `OVERLAP` after it
happened is not picked up.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import Select, and_, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign
from app.contacts.models import Contact
from app.events.models import Event
from app.segments.compiler import property_condition
from app.segments.models import SegmentMembershipChange
from app.segments.rules.nodes import PropertyFilter
from app.sequences.enrollments.service import enroll_count
from app.sequences.models import Enrollment

log = structlog.get_logger("herald.campaigns")

OVERLAP = timedelta(minutes=5)


async def sweep(session: AsyncSession, campaign: Campaign, cursor: datetime, now: datetime) -> int:
    """Enroll the eligible contacts with entries in (cursor - OVERLAP, now]; how many."""
    # Imported here: launch imports the actions module, which imports this one lazily.
    from app.campaigns.launch import eligible, pinned_version

    entries = _entries(campaign, cursor - OVERLAP, now)
    if entries is None:
        return 0
    entry = entries.subquery("entry")
    candidates = select(entry.c.contact_id, entry.c.entered_at)
    served = _served(campaign, entry.c.contact_id, entry.c.entered_at, now)
    chosen = await eligible(
        session,
        campaign,
        Contact.id.in_(candidates.where(~served).with_only_columns(entry.c.contact_id)),
    )
    version = await pinned_version(session, campaign)
    enrolled = await enroll_count(
        session, campaign.workspace_id, version, chosen, campaign_id=campaign.id, source="trigger"
    )
    if enrolled:
        campaign.enrolled_count = (campaign.enrolled_count or 0) + enrolled
    return enrolled


def reentry_policy(campaign: Campaign) -> tuple[str, int | None]:
    policy = (campaign.reentry or {}).get("policy") or "always"
    days = (campaign.reentry or {}).get("days")
    return str(policy), int(days) if days is not None else None


def _entries(campaign: Campaign, since: datetime, now: datetime) -> Select[Any] | None:
    """(contact_id, entered_at = latest entry in the window) per contact, or None when the
    trigger is unusable (the campaigns API validates its shape; a bad one enrolls nobody)."""
    trigger = campaign.trigger or {}
    lower = max(since, campaign.launched_at) if campaign.launched_at else since
    upper_ok: list[Any] = []
    if trigger.get("kind") == "segment_entry" and trigger.get("segment_id"):
        table: Any = SegmentMembershipChange
        at = SegmentMembershipChange.occurred_at
        conditions: list[Any] = [
            SegmentMembershipChange.workspace_id == campaign.workspace_id,
            SegmentMembershipChange.segment_id == uuid.UUID(str(trigger["segment_id"])),
            SegmentMembershipChange.change == "entered",
        ]
    elif trigger.get("kind") == "event" and trigger.get("event_type"):
        table, at = Event, Event.occurred_at
        try:
            filters = [PropertyFilter.model_validate(item) for item in trigger.get("where") or []]
        except ValidationError:
            log.warning("campaign_trigger_invalid", campaign_id=str(campaign.id))
            return None
        conditions = [
            Event.workspace_id == campaign.workspace_id,
            Event.type == str(trigger["event_type"]),
            *(property_condition(item) for item in filters),
        ]
    else:
        return None
    if campaign.end_at is not None:
        upper_ok.append(at < campaign.end_at)
    return (
        select(table.contact_id.label("contact_id"), func.max(at).label("entered_at"))
        .where(*conditions, at > lower, at <= now, *upper_ok)
        .group_by(table.contact_id)
    )


def _served(campaign: Campaign, contact_id: Any, entered_at: Any, now: datetime) -> Any:
    """True when this entry needs no new enrollment under the re-entry policy."""
    policy, days = reentry_policy(campaign)
    mine = and_(
        Enrollment.workspace_id == campaign.workspace_id,
        Enrollment.campaign_id == campaign.id,
        Enrollment.contact_id == contact_id,
    )
    if policy == "once":
        return exists().where(mine)
    recent: list[Any] = [
        Enrollment.started_at >= entered_at,
        Enrollment.state.in_(("active", "waiting", "paused")),
    ]
    if policy == "once_per" and days:
        recent.append(Enrollment.started_at > literal(now) - timedelta(days=days))
    return exists().where(mine, or_(*recent))
