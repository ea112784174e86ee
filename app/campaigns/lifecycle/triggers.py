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

The entries come from the segments domain (which owns the journal and the rule language's
property filters), the served test from the sequences domain (which owns enrollments), the
reachable contacts from the contacts domain: this module only composes their SELECTs.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.lifecycle.launch import eligible, pinned_version
from app.campaigns.models import Campaign
from app.segments.rules.nodes import PropertyFilter
from app.segments.service import event_entries, segment_entries
from app.sequences.enrollments.service import enroll_count, unserved_entries

log = structlog.get_logger("herald.campaigns")

OVERLAP = timedelta(minutes=5)


async def sweep(session: AsyncSession, campaign: Campaign, cursor: datetime, now: datetime) -> int:
    """Enroll the eligible contacts with entries in (cursor - OVERLAP, now]; how many."""
    entries = _entries(session, campaign, cursor - OVERLAP, now)
    if entries is None:
        return 0
    reentry = reentry_policy(campaign)
    unserved = unserved_entries(
        session, campaign.workspace_id, campaign.id, entries, reentry=reentry, now=now
    )
    chosen = await eligible(session, campaign, unserved)
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


def _entries(
    session: AsyncSession, campaign: Campaign, since: datetime, now: datetime
) -> Select[Any] | None:
    """(contact_id, entered_at = latest entry in the window) per contact, or None when the
    trigger is unusable (the campaigns API validates its shape; a bad one enrolls nobody)."""
    trigger = campaign.trigger or {}
    lower = max(since, campaign.launched_at) if campaign.launched_at else since
    window = (lower, now, campaign.end_at)
    if trigger.get("kind") == "segment_entry" and trigger.get("segment_id"):
        segment_id = uuid.UUID(str(trigger["segment_id"]))
        return segment_entries(session, campaign.workspace_id, segment_id, window)
    if trigger.get("kind") == "event" and trigger.get("event_type"):
        try:
            filters = [PropertyFilter.model_validate(item) for item in trigger.get("where") or []]
        except ValidationError:
            log.warning("campaign_trigger_invalid", campaign_id=str(campaign.id))
            return None
        event_type = str(trigger["event_type"])
        return event_entries(session, campaign.workspace_id, event_type, filters, window)
    return None
