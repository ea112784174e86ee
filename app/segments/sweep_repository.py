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

from sqlalchemy import DateTime, Row, Select, and_, delete, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import rowcount
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
        journal, snapshot = SegmentMembershipChange, SegmentCountSnapshot
        changes = await self.session.execute(
            delete(journal).where(
                journal.id.in_(
                    _oldest([journal.id], journal.segment_id, journal.occurred_at, cutoff, limit)
                )
            )
        )
        old_snapshots = _oldest(
            [snapshot.segment_id, snapshot.taken_at],
            snapshot.segment_id,
            snapshot.taken_at,
            cutoff,
            limit,
        )
        snapshots = await self.session.execute(
            delete(snapshot).where(
                tuple_(snapshot.segment_id, snapshot.taken_at).in_(old_snapshots)
            )
        )
        return rowcount(changes), rowcount(snapshots)


def _oldest(columns: list[Any], segment: Any, at: Any, cutoff: datetime, limit: int) -> Select[Any]:
    """`columns` of up to `limit` rows older than `cutoff`, read segment by segment through
    the table's `(segment, at)` index (a LATERAL subquery per segment)."""
    old = select(*columns).where(segment == Segment.id, at < cutoff).limit(limit).lateral("old")
    return select(*old.c).join_from(Segment, old, literal(True)).limit(limit)
