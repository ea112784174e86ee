"""Every query of the campaign lifecycle: the campaign row lock and the durable actions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign, CampaignAction
from app.core.ids import new_id

SCAN_LIMIT = 100  # actions per tick; the rest wait for the next tick
COMPLETE_EVERY = timedelta(seconds=60)  # how often a running campaign checks completion


@dataclass(frozen=True)
class Leased:
    workspace_id: uuid.UUID
    action_id: uuid.UUID
    campaign_id: uuid.UUID


def complete_check_at(now: datetime) -> datetime:
    return now + COMPLETE_EVERY


async def count_rows(session: AsyncSession, query: Select[Any]) -> int:
    """How many rows a SELECT (an audience of contact ids) returns."""
    statement = select(func.count()).select_from(query.subquery())
    return int((await session.execute(statement)).scalar_one())


async def lock_campaign(session: AsyncSession, campaign: Campaign) -> Campaign:
    """Lock the campaign row and refresh the object from it (a concurrent change committed
    while we waited for the lock is what we decide on)."""
    await session.execute(
        select(Campaign)
        .where(Campaign.workspace_id == campaign.workspace_id, Campaign.id == campaign.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return campaign


async def locked_campaign(session: AsyncSession, leased: Leased) -> Campaign | None:
    """The leased action's campaign, locked first (campaign, then action: the cancel order)."""
    return await session.get(
        Campaign, leased.campaign_id, with_for_update=True, populate_existing=True
    )


async def locked_pending_action(session: AsyncSession, leased: Leased) -> CampaignAction | None:
    """The leased action if still pending and not locked by another runner (SKIP LOCKED)."""
    statement = (
        select(CampaignAction)
        .where(
            CampaignAction.id == leased.action_id,
            CampaignAction.workspace_id == leased.workspace_id,
            CampaignAction.done_at.is_(None),
        )
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


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
    """Lease the due, unleased (or lease-expired) pending actions, oldest first (all
    workspaces: the scan hands each leased action to its own workspace-scoped run)."""
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
