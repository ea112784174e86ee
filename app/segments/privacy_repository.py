"""Queries of a privacy export: one contact's memberships and journal, scoped by workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.segments.models import Segment, SegmentMembership, SegmentMembershipChange


class ContactMembershipRecords:
    """One contact's memberships and journal, for its privacy export."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def memberships(self, contact_id: uuid.UUID) -> Sequence[Any]:
        result = await self.session.execute(
            select(
                SegmentMembership.segment_id,
                Segment.name.label("segment_name"),
                SegmentMembership.entered_at,
            )
            .join(Segment, Segment.id == SegmentMembership.segment_id)
            .where(
                SegmentMembership.workspace_id == self.workspace_id,
                SegmentMembership.contact_id == contact_id,
            )
            .order_by(SegmentMembership.entered_at)
        )
        return result.all()

    async def changes(self, contact_id: uuid.UUID) -> Sequence[SegmentMembershipChange]:
        result = await self.session.execute(
            select(SegmentMembershipChange)
            .where(
                SegmentMembershipChange.workspace_id == self.workspace_id,
                SegmentMembershipChange.contact_id == contact_id,
            )
            .order_by(SegmentMembershipChange.occurred_at, SegmentMembershipChange.id)
        )
        return result.scalars().all()
