"""Every query of the campaigns API, scoped by workspace (launch queries live in launch.py)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, String, func, or_, select, type_coerce
from sqlalchemy.dialects import postgresql

from app.campaigns.models import Campaign, SpendEntry
from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository, window_clauses
from app.segments.models import Segment
from app.sequences.models import Sequence, SequenceVersion
from app.workspaces.models import Member

# A finished campaign enrolls and reviews nobody any more: its audience segments and approval
# policy can go (it keeps their ids as history).
FINISHED_STATUSES = ("completed", "cancelled", "archived")


@dataclass(frozen=True)
class CampaignFilters:
    status: str | None = None
    owner_member_id: uuid.UUID | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    start_after: datetime | None = None
    start_before: datetime | None = None

    def conditions(self) -> list[Any]:
        """Ranges are half-open: `_after` inclusive, `_before` exclusive."""
        found: list[Any] = []
        if self.status is not None:
            found.append(Campaign.status == self.status)
        if self.owner_member_id is not None:
            found.append(Campaign.owner_member_id == self.owner_member_id)
        if self.tag is not None:
            # `@>` (the GIN index's operator); the model's generic ARRAY lacks `contains`.
            tags = type_coerce(Campaign.tags, postgresql.ARRAY(String(64)))
            found.append(tags.contains([self.tag]))
        found += window_clauses(Campaign.created_at, (self.created_after, self.created_before))
        found += window_clauses(Campaign.start_at, (self.start_after, self.start_before))
        return found


class CampaignRepository(WorkspaceRepository[Campaign]):
    model = Campaign
    noun = "campaign"

    async def filtered(self, params: PageParams, filters: CampaignFilters) -> PageResult[Campaign]:
        return await self.page(params, *filters.conditions())

    async def using_sequence(self, sequence_id: uuid.UUID) -> list[Campaign]:
        """Every campaign that names the sequence, finished ones included: a campaign keeps
        the sequence (and the version it ran) as the record of what it sent."""
        return await self._using(Campaign.sequence_id == sequence_id)

    async def using_segment(self, segment_id: uuid.UUID) -> list[Campaign]:
        """Unfinished campaigns whose audience (include or exclude) or segment-entry trigger
        names the segment."""
        as_json = type_coerce([str(segment_id)], postgresql.JSONB)
        return await self._using(
            Campaign.status.not_in(FINISHED_STATUSES),
            or_(
                Campaign.include_segments.op("@>", return_type=Boolean)(as_json),
                Campaign.exclude_segments.op("@>", return_type=Boolean)(as_json),
                Campaign.trigger["segment_id"].astext == str(segment_id),
            ),
        )

    async def using_policy(self, policy_id: uuid.UUID) -> list[Campaign]:
        """Unfinished campaigns reviewed under the policy."""
        return await self._using(
            Campaign.status.not_in(FINISHED_STATUSES), Campaign.approval_policy_id == policy_id
        )

    async def _using(self, *conditions: Any) -> list[Campaign]:
        statement = self.scoped().where(*conditions).order_by(Campaign.id)
        return list((await self.session.execute(statement)).scalars().all())

    async def by_ids(self, ids: Collection[uuid.UUID]) -> list[Campaign]:
        result = await self.session.execute(self.scoped().where(Campaign.id.in_(list(ids))))
        return list(result.scalars())


class SpendRepository(WorkspaceRepository[SpendEntry]):
    model = SpendEntry
    noun = "spend entry"

    async def of_campaign(
        self, campaign_id: uuid.UUID, params: PageParams
    ) -> PageResult[SpendEntry]:
        return await self.page(params, SpendEntry.campaign_id == campaign_id)

    async def total(self, campaign_id: uuid.UUID) -> Decimal:
        statement = select(func.coalesce(func.sum(SpendEntry.amount), 0)).where(
            SpendEntry.workspace_id == self.workspace_id, SpendEntry.campaign_id == campaign_id
        )
        total = Decimal((await self.session.execute(statement)).scalar_one())
        return total.quantize(Decimal("0.01"))


class References:
    """Existence of what a campaign points at, in the caller's workspace only (another
    workspace's ids are as unknown as made-up ones)."""

    def __init__(self, session: Any, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def existing_segments(self, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        statement = select(Segment.id).where(
            Segment.workspace_id == self.workspace_id, Segment.id.in_(list(ids))
        )
        return set((await self.session.execute(statement)).scalars().all())

    async def sequence(self, sequence_id: uuid.UUID) -> Sequence | None:
        statement = select(Sequence).where(
            Sequence.workspace_id == self.workspace_id, Sequence.id == sequence_id
        )
        result: Sequence | None = (await self.session.execute(statement)).scalar_one_or_none()
        return result

    async def sequence_version(self, sequence_id: uuid.UUID, number: int) -> SequenceVersion | None:
        statement = select(SequenceVersion).where(
            SequenceVersion.workspace_id == self.workspace_id,
            SequenceVersion.sequence_id == sequence_id,
            SequenceVersion.number == number,
        )
        found: SequenceVersion | None = (await self.session.execute(statement)).scalar_one_or_none()
        return found

    async def member_exists(self, member_id: uuid.UUID) -> bool:
        return await self._exists(
            select(Member.id).where(
                Member.workspace_id == self.workspace_id, Member.id == member_id
            )
        )

    async def _exists(self, statement: Any) -> bool:
        return (await self.session.execute(statement.limit(1))).first() is not None

    async def count(self, contacts: Any) -> int:
        """How many rows a contact-id SELECT (the launch audience) returns."""
        statement = select(func.count()).select_from(contacts.subquery())
        return int((await self.session.execute(statement)).scalar_one())
