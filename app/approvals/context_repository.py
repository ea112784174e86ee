"""The reviewers' read model: names and sizes of what a campaign under review points at
(segments, sequences, owners), one batched query per kind for a whole page of requests."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.segments.models import Segment
from app.sequences.models import Sequence
from app.workspaces.models import Member


class ReviewContextReads:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def segments(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int]]:
        """id -> (name, member_count) of this workspace's segments among `ids`."""
        if not ids:
            return {}
        statement = select(Segment.id, Segment.name, Segment.member_count).where(
            Segment.workspace_id == self.workspace_id, Segment.id.in_(ids)
        )
        rows = await self.session.execute(statement)
        return {row.id: (row.name, row.member_count) for row in rows}

    async def sequence_names(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not ids:
            return {}
        statement = select(Sequence.id, Sequence.name).where(
            Sequence.workspace_id == self.workspace_id, Sequence.id.in_(ids)
        )
        return {row.id: row.name for row in await self.session.execute(statement)}

    async def member_names(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not ids:
            return {}
        statement = select(Member.id, Member.name).where(
            Member.workspace_id == self.workspace_id, Member.id.in_(ids)
        )
        return {row.id: row.name for row in await self.session.execute(statement)}
