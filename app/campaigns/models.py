"""Campaigns, their spend entries and their durable scheduled actions (launch, end)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ARRAY, Date, ForeignKey, Index, Integer, Numeric, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin
from app.core.repository import WorkspaceEntity

CAMPAIGN_STATUSES = (
    "draft",
    "in_review",
    "approved",
    "scheduled",
    "running",
    "paused",
    "completed",
    "cancelled",
    "archived",
)


class Campaign(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_workspace_status", "workspace_id", "status", "id"),
        Index("ix_campaigns_tags", "tags", postgresql_using="gin"),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(5000))
    objective: Mapped[str | None] = mapped_column(String(500))
    # {"event_type": "purchase", "window": "P7D"}
    goal: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # [{"metric": "conversion_rate", "target": 0.05}]
    kpis: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(16)), default=list)
    include_segments: Mapped[list[uuid.UUID]] = mapped_column(JSONB, default=list)
    exclude_segments: Mapped[list[uuid.UUID]] = mapped_column(JSONB, default=list)
    sequence_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sequences.id", ondelete="RESTRICT")
    )
    sequence_version: Mapped[int | None] = mapped_column(Integer)  # None: latest at launch
    # The version actually enrolled on, pinned at launch.
    sequence_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sequence_versions.id", ondelete="RESTRICT")
    )
    type: Mapped[str] = mapped_column(String(16))  # one_off, triggered
    # {"kind": "segment_entry", "segment_id": ...}
    # or {"kind": "event", "event_type": ..., "where": [...]}
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # {"policy": "once" | "once_per" | "always", "days": N}
    reentry: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    start_at: Mapped[datetime | None] = mapped_column()
    end_at: Mapped[datetime | None] = mapped_column()
    budget_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    budget_currency: Mapped[str | None] = mapped_column(String(3))
    owner_member_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL")
    )
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    approval_policy_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("approval_policies.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=1)  # ETag source
    approval_round: Mapped[int] = mapped_column(Integer, default=0)
    # Launch variance: planned (start_at when scheduled) vs actual (launched_at).
    planned_start_at: Mapped[datetime | None] = mapped_column()
    launched_at: Mapped[datetime | None] = mapped_column()
    enrolled_count: Mapped[int | None] = mapped_column(Integer)
    finished_at: Mapped[datetime | None] = mapped_column()  # completed or cancelled
    archived_at: Mapped[datetime | None] = mapped_column()


class SpendEntry(WorkspaceEntity, Base):
    __tablename__ = "spend_entries"
    __table_args__ = (Index("ix_spend_entries_campaign", "campaign_id", "spent_on"),)

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    spent_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column()


class CampaignAction(WorkspaceEntity, Base):
    """A durable scheduled action (`launch` at the start, `end` at the end time): rows in
    Postgres driven by a scan every second, never a sleeping job, so an action missed while
    workers were down runs on recovery."""

    __tablename__ = "campaign_actions"
    __table_args__ = (
        Index("ix_campaign_actions_due", "due_at", postgresql_where=text("done_at IS NULL")),
        Index(
            "uq_campaign_actions_pending",
            "campaign_id",
            "kind",
            unique=True,
            postgresql_where=text("done_at IS NULL"),
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # launch, end
    due_at: Mapped[datetime] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
