"""Durable campaign actions: rows in `campaign_actions`, never sleeping jobs.

Kinds:
- `launch` (due at the start): scheduled -> running, enrolls the audience.
- `end` (due at the end time): stops new enrollments (drops the trigger sweep), then checks
  completion.
- `trigger` (triggered campaigns, always due): one sweep of new segment entries or events;
  its `due_at` is the sweep's cursor (entries up to it are consumed), moved to "now" by
  every run, so the row is due again at the next tick.
- `complete` (a re-check every `COMPLETE_EVERY`): the campaign completes once no
  enrollment of it is unfinished (one_off without an end time, or after the end).

`lease_due` is the scan (every second, like the engine's): it leases due rows
(`lease_until`, `FOR UPDATE SKIP LOCKED`) in a short transaction; each leased action then
runs in its own transaction (`run_action`), which takes the campaign row lock first and the
action row lock second with SKIP LOCKED, so two workers never run one action and a cancel
(campaign lock, then actions) cannot deadlock with it. An action whose run failed or whose
worker died keeps its expired lease and is scanned again: missed launches run on recovery.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.campaigns import transitions
from app.campaigns.lifecycle import launch, triggers
from app.campaigns.lifecycle.repository import (
    Leased,
    cancel_pending,
    complete_check_at,
    ensure_action,
    lease_due,
    locked_campaign,
    locked_pending_action,
)
from app.campaigns.models import Campaign, CampaignAction
from app.sequences.enrollments.service import campaign_has_unfinished

__all__ = ["Leased", "lease_due", "run_action"]


async def run_action(session: AsyncSession, leased: Leased, now: datetime) -> str | None:
    """Run one leased action in the caller's transaction; what it did, or None when the
    action was already done or is being run by someone else."""
    campaign = await locked_campaign(session, leased)
    action = await locked_pending_action(session, leased)
    if action is None or campaign is None:
        return None
    if action.kind == "launch":
        await launch.launch(session, campaign, now)
        return _done(action, now, "launched")
    if action.kind == "end":
        await cancel_pending(session, campaign.workspace_id, campaign.id, ("trigger",))
        if campaign.status in ("running", "paused") and not await complete_if_finished(
            session, campaign, now
        ):
            await ensure_action(session, campaign, "complete", complete_check_at(now), now)
        return _done(action, now, "ended")
    if action.kind == "complete":
        if campaign.status not in ("running", "paused"):
            return _done(action, now, "stale")
        if await complete_if_finished(session, campaign, now):
            return _done(action, now, "completed")
        return _again(action, complete_check_at(now), "waiting")
    if action.kind == "trigger":
        if campaign.status == "running":
            await triggers.sweep(session, campaign, action.due_at, now)
            return _again(action, now, "swept")
        if campaign.status in ("scheduled", "paused"):
            return _again(action, action.due_at, "held")  # the cursor stays: catch up later
        return _done(action, now, "stale")
    return _done(action, now, "unknown")


async def complete_if_finished(session: AsyncSession, campaign: Campaign, now: datetime) -> bool:
    """running -> completed when no enrollment of the campaign is unfinished."""
    if campaign.status != "running":
        return False
    if await campaign_has_unfinished(session, campaign.workspace_id, campaign.id):
        return False
    data = {"enrolled_count": campaign.enrolled_count}
    await transitions.apply(session, campaign, "complete", Actor.system(), now, data=data)
    return True


def _done(action: CampaignAction, now: datetime, outcome: str) -> str:
    action.done_at = now
    action.lease_until = None
    return outcome


def _again(action: CampaignAction, due_at: datetime, outcome: str) -> str:
    action.due_at = due_at
    action.lease_until = None
    return outcome
