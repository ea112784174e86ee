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

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor, record
from app.campaigns.models import Campaign, CampaignAction
from app.campaigns.transitions import emit_status_changed
from app.core.ids import new_id
from app.sequences.models import Enrollment

COMPLETE_EVERY = timedelta(seconds=60)
SCAN_LIMIT = 100  # actions per tick; the rest wait for the next tick


@dataclass(frozen=True)
class Leased:
    workspace_id: uuid.UUID
    action_id: uuid.UUID
    campaign_id: uuid.UUID


def complete_check_at(now: datetime) -> datetime:
    return now + COMPLETE_EVERY


async def ensure_action(
    session: AsyncSession, campaign: Campaign, kind: str, due_at: datetime, now: datetime
) -> None:
    """Insert the pending action of this kind unless one exists (one pending action per
    campaign and kind, by a partial unique index): scheduling twice schedules once."""
    await session.execute(
        pg_insert(CampaignAction)
        .values(
            id=new_id(),
            workspace_id=campaign.workspace_id,
            campaign_id=campaign.id,
            kind=kind,
            due_at=due_at,
            created_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["campaign_id", "kind"], index_where=CampaignAction.done_at.is_(None)
        )
    )


async def cancel_pending(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    kinds: tuple[str, ...] | None = None,
) -> None:
    """Drop pending actions (they never ran, so no `done_at` history is kept)."""
    statement = delete(CampaignAction).where(
        CampaignAction.workspace_id == workspace_id,
        CampaignAction.campaign_id == campaign_id,
        CampaignAction.done_at.is_(None),
    )
    if kinds is not None:
        statement = statement.where(CampaignAction.kind.in_(kinds))
    await session.execute(statement)


async def lease_due(session: AsyncSession, now: datetime, lease: timedelta) -> list[Leased]:
    """Lease the due, unleased (or lease-expired) pending actions, oldest first."""
    due = (
        select(CampaignAction.id)
        .where(
            CampaignAction.done_at.is_(None),
            CampaignAction.due_at <= now,
            or_(CampaignAction.lease_until.is_(None), CampaignAction.lease_until < now),
        )
        .order_by(CampaignAction.due_at)
        .limit(SCAN_LIMIT)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(CampaignAction)
        .where(CampaignAction.id.in_(due.scalar_subquery()))
        .values(lease_until=now + lease)
        .returning(CampaignAction.workspace_id, CampaignAction.id, CampaignAction.campaign_id)
        .execution_options(synchronize_session=False)
    )
    return [Leased(row[0], row[1], row[2]) for row in result.all()]


async def run_action(session: AsyncSession, leased: Leased, now: datetime) -> str | None:
    """Run one leased action in the caller's transaction; what it did, or None when the
    action was already done or is being run by someone else."""
    # Imported here: launch and triggers use this module's helpers.
    from app.campaigns import launch, triggers

    campaign = await session.get(
        Campaign, leased.campaign_id, with_for_update=True, populate_existing=True
    )
    action = (
        await session.execute(
            select(CampaignAction)
            .where(
                CampaignAction.id == leased.action_id,
                CampaignAction.workspace_id == leased.workspace_id,
                CampaignAction.done_at.is_(None),
            )
            .with_for_update(skip_locked=True)
        )
    ).scalar_one_or_none()
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
    unfinished = await session.execute(
        select(
            exists().where(
                Enrollment.workspace_id == campaign.workspace_id,
                Enrollment.campaign_id == campaign.id,
                Enrollment.state.in_(("active", "waiting", "paused")),
            )
        )
    )
    if unfinished.scalar():
        return False
    campaign.status = "completed"
    campaign.finished_at = now
    campaign.version += 1
    await emit_status_changed(session, campaign, "running", now)
    await record(
        session,
        campaign.workspace_id,
        Actor.system(),
        "campaign.completed",
        entity_type="campaign",
        entity_id=campaign.id,
        changes={"status": {"before": "running", "after": "completed"}},
        data={"enrolled_count": campaign.enrolled_count},
    )
    return True


def _done(action: CampaignAction, now: datetime, outcome: str) -> str:
    action.done_at = now
    action.lease_until = None
    return outcome


def _again(action: CampaignAction, due_at: datetime, outcome: str) -> str:
    action.due_at = due_at
    action.lease_until = None
    return outcome
