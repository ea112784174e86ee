"""Segments, their membership, membership changes and count history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin
from app.core.repository import WorkspaceEntity, WorkspaceScoped


class Segment(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "segments"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # dynamic, static
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, default=1)  # ETag source
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None] = mapped_column()


class SegmentMembership(WorkspaceScoped, Base):
    __tablename__ = "segment_memberships"
    __table_args__ = (Index("ix_segment_memberships_contact", "contact_id"),)

    segment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    entered_at: Mapped[datetime] = mapped_column()


class SegmentMembershipChange(WorkspaceEntity, Base):
    """`segment.entered` / `segment.left`, for triggers and webhooks.

    No foreign key to contacts: the journal is history, and a hard-deleted contact's
    `entered` and `left` rows (the `left` written by the deletion itself) stay listed. They
    hold ids only, no personal data."""

    __tablename__ = "segment_membership_changes"
    __table_args__ = (
        Index("ix_segment_membership_changes_segment_time", "segment_id", "occurred_at"),
        # The changes list: one segment's changes, newest first by (time-ordered) id.
        Index("ix_segment_membership_changes_segment_id", "segment_id", "id"),
        Index("ix_segment_membership_changes_contact", "contact_id"),
    )

    segment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    contact_id: Mapped[uuid.UUID] = mapped_column()
    change: Mapped[str] = mapped_column(String(8))  # entered, left
    occurred_at: Mapped[datetime] = mapped_column()


class SegmentCountSnapshot(WorkspaceScoped, Base):
    __tablename__ = "segment_count_snapshots"

    segment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    taken_at: Mapped[datetime] = mapped_column(primary_key=True)
    member_count: Mapped[int] = mapped_column(Integer)


class SegmentDirtyContact(Base):
    """Contacts whose data changed since dynamic memberships were last evaluated for them.

    Written in the ingest transaction (so a row is visible exactly when the change is) and
    drained by the membership job. Each write sets a fresh `token`; the job deletes a row only
    if its token is still the one it read, so a change noted while the job was evaluating is
    evaluated again, and the job never holds row locks that ingest would wait on. No foreign
    key to contacts: the insert stays cheap, and a deleted contact's row drains harmlessly.
    """

    __tablename__ = "segment_dirty_contacts"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    token: Mapped[uuid.UUID] = mapped_column()
