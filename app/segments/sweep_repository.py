"""System-wide queries of segment upkeep, across workspaces: which workspaces and segments
the periodic job has work for, count snapshots, and the daily purge of membership history.
Each piece of work found then runs through the workspace-scoped repositories
(`app/segments/repository.py`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Row, and_, delete, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.segments.models import (
    Segment,
    SegmentCountSnapshot,
    SegmentDirtyContact,
    SegmentMembershipChange,
)


@dataclass(frozen=True)
class DynamicSegmentState:
    workspace_id: uuid.UUID
    id: uuid.UUID
    rule: dict[str, Any] | None
    refreshed_at: datetime | None


class SegmentSweep:
    """System-wide lookups for the periodic job: which workspaces and segments have work."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def workspaces_with_dirty_contacts(self) -> list[uuid.UUID]:
        statement = select(SegmentDirtyContact.workspace_id).distinct()
        return list((await self.session.execute(statement)).scalars().all())

    async def dynamic_segments(self) -> list[DynamicSegmentState]:
        statement = select(
            Segment.workspace_id, Segment.id, Segment.rule, Segment.refreshed_at
        ).where(Segment.kind == "dynamic")
        rows: Sequence[Row[Any]] = (await self.session.execute(statement)).all()
        return [DynamicSegmentState(r.workspace_id, r.id, r.rule, r.refreshed_at) for r in rows]

    async def snapshot_counts(self, now: datetime, heartbeat: timedelta) -> int:
        """Record each segment's member count when it changed since its last snapshot, or
        when the last one is older than `heartbeat`. One statement for every segment."""
        last = (
            select(SegmentCountSnapshot.taken_at, SegmentCountSnapshot.member_count)
            .where(SegmentCountSnapshot.segment_id == Segment.id)
            .order_by(SegmentCountSnapshot.taken_at.desc())
            .limit(1)
            .lateral("last")
        )
        source = (
            select(
                Segment.workspace_id,
                Segment.id,
                literal(now, DateTime(timezone=True)),
                Segment.member_count,
            )
            .outerjoin(last, literal(True))
            .where(
                or_(
                    last.c.taken_at.is_(None),
                    last.c.taken_at <= now - heartbeat,
                    and_(last.c.member_count != Segment.member_count, last.c.taken_at < now),
                )
            )
        )
        statement = (
            insert(SegmentCountSnapshot)
            .from_select(["workspace_id", "segment_id", "taken_at", "member_count"], source)
            .on_conflict_do_nothing()
            .returning(SegmentCountSnapshot.segment_id)
        )
        return len((await self.session.execute(statement)).all())

    async def purge_history(self, cutoff: datetime, limit: int) -> tuple[int, int]:
        """Delete up to `limit` journal rows and `limit` count snapshots older than `cutoff`.
        Returns (journal rows, snapshots) deleted.

        Each segment's oldest rows are found through its own index range (journal
        `(segment_id, occurred_at)`, snapshots' primary key `(segment_id, taken_at)`), so a
        batch reads what it deletes, not the whole table."""
        journal = SegmentMembershipChange
        old_changes = (
            select(journal.id)
            .where(journal.segment_id == Segment.id, journal.occurred_at < cutoff)
            .limit(limit)
            .lateral("old")
        )
        changes = await self.session.execute(
            delete(journal).where(
                journal.id.in_(
                    select(old_changes.c.id)
                    .join_from(Segment, old_changes, literal(True))
                    .limit(limit)
                )
            )
        )
        snapshot = SegmentCountSnapshot
        old_snapshots = (
            select(snapshot.segment_id, snapshot.taken_at)
            .where(snapshot.segment_id == Segment.id, snapshot.taken_at < cutoff)
            .limit(limit)
            .lateral("old")
        )
        picked = (
            select(old_snapshots.c.segment_id, old_snapshots.c.taken_at)
            .join_from(Segment, old_snapshots, literal(True))
            .limit(limit)
        )
        snapshots = await self.session.execute(
            delete(snapshot).where(tuple_(snapshot.segment_id, snapshot.taken_at).in_(picked))
        )
        return _rowcount(changes), _rowcount(snapshots)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
