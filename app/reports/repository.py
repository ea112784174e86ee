"""Every query of the reports: campaigns live in a range, spend sums, approval rounds and
launch times. All scoped to one workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from app.approvals.models import ApprovalRequest
from app.campaigns.models import Campaign, SpendEntry

DECIDED = ("approved", "rejected", "changes_requested")


class ReportRepository:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def live_campaigns(self, start: datetime, end: datetime, limit: int) -> list[Campaign]:
        """Campaigns launched before `end` and not finished before `start`, oldest launch
        first; at most `limit` (+1 to tell the caller there were more)."""
        statement = (
            select(Campaign)
            .where(
                Campaign.workspace_id == self.workspace_id,
                Campaign.launched_at.is_not(None),
                Campaign.launched_at < end,
                or_(Campaign.finished_at.is_(None), Campaign.finished_at >= start),
            )
            .order_by(Campaign.launched_at, Campaign.id)
            .limit(limit + 1)
        )
        return list((await self.session.execute(statement)).scalars())

    async def spend(
        self, campaign_ids: Sequence[uuid.UUID]
    ) -> list[tuple[uuid.UUID, str | None, Decimal]]:
        """(campaign, channel, sum of amounts) of the campaigns' spend entries."""
        if not campaign_ids:
            return []
        statement = (
            select(SpendEntry.campaign_id, SpendEntry.channel, func.sum(SpendEntry.amount))
            .where(
                SpendEntry.workspace_id == self.workspace_id,
                SpendEntry.campaign_id.in_(list(campaign_ids)),
            )
            .group_by(SpendEntry.campaign_id, SpendEntry.channel)
        )
        rows = await self.session.execute(statement)
        return [(row[0], row[1], Decimal(row[2])) for row in rows]

    async def rounds_touching(self, start: datetime, end: datetime) -> list[ApprovalRequest]:
        """Rounds that may have a stage or a decision in [start, end): opened before `end`
        and not decided before `start`."""
        statement = (
            select(ApprovalRequest)
            .where(
                ApprovalRequest.workspace_id == self.workspace_id,
                ApprovalRequest.created_at < end,
                or_(ApprovalRequest.decided_at.is_(None), ApprovalRequest.decided_at >= start),
            )
            .order_by(ApprovalRequest.campaign_id, ApprovalRequest.round)
        )
        return list((await self.session.execute(statement)).scalars())

    async def first_decided_rounds(
        self, start: datetime, end: datetime
    ) -> list[tuple[uuid.UUID, str]]:
        """Per campaign, its first round with a reviewer verdict (approved, rejected or changes
        requested, with at least one stage), when that verdict fell in [start, end):
        (campaign, status)."""
        first = (
            select(ApprovalRequest)
            .where(
                ApprovalRequest.workspace_id == self.workspace_id,
                ApprovalRequest.status.in_(DECIDED),
                func.jsonb_array_length(ApprovalRequest.stages) > 0,
                ApprovalRequest.decided_at < end,
            )
            .order_by(ApprovalRequest.campaign_id, ApprovalRequest.round)
            .ext(distinct_on(ApprovalRequest.campaign_id))
            .subquery()
        )
        statement = select(first.c.campaign_id, first.c.status).where(first.c.decided_at >= start)
        rows = await self.session.execute(statement)
        return [(row[0], row[1]) for row in rows]

    async def rounds_of(self, campaign_id: uuid.UUID) -> list[ApprovalRequest]:
        statement = (
            select(ApprovalRequest)
            .where(
                ApprovalRequest.workspace_id == self.workspace_id,
                ApprovalRequest.campaign_id == campaign_id,
            )
            .order_by(ApprovalRequest.round)
        )
        return list((await self.session.execute(statement)).scalars())

    async def launches(
        self, start: datetime, end: datetime
    ) -> list[tuple[uuid.UUID, datetime, datetime]]:
        """(campaign, planned start, launch) of campaigns launched in [start, end) that had a
        planned start."""
        statement = select(Campaign.id, Campaign.planned_start_at, Campaign.launched_at).where(
            Campaign.workspace_id == self.workspace_id,
            Campaign.planned_start_at.is_not(None),
            Campaign.launched_at >= start,
            Campaign.launched_at < end,
        )
        rows = await self.session.execute(statement)
        return [
            (row[0], row[1], row[2]) for row in rows if row[1] is not None and row[2] is not None
        ]
