"""Approval policies (ordered stages of reviewers with a rule, plus gates), one request per
review round of a campaign, and the reviewers' decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin
from app.core.repository import WorkspaceEntity


class ApprovalPolicy(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "approval_policies"
    __table_args__ = (
        Index(
            "uq_approval_policies_default",
            "workspace_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"name": "Brand", "reviewers": {"roles": ["brand_lead"], "members": [...]},
    #   "rule": "all" | "any" | {"n_of_m": 2}}]
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # [{"when": {"audience_count_gt": 100000} | {"budget_gt": "5000.00"}, "stage": {...}}]
    gates: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)


class ApprovalRequest(WorkspaceEntity, Base):
    __tablename__ = "approval_requests"
    __table_args__ = (
        UniqueConstraint("campaign_id", "round", name="uq_approval_requests_campaign_round"),
        Index(
            "ix_approval_requests_pending",
            "workspace_id",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer)
    # The resolved stages for this round (policy stages plus the gates that applied).
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    current_stage: Mapped[int] = mapped_column(Integer, default=0)
    # pending, approved, rejected, changes_requested, voided
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column()
    stage_started_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()


class ApprovalDecision(WorkspaceEntity, Base):
    __tablename__ = "approval_decisions"
    __table_args__ = (
        # One decision per reviewer per round (a round is one request).
        UniqueConstraint("request_id", "member_id", name="uq_approval_decisions_reviewer"),
    )

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE")
    )
    stage: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    decision: Mapped[str] = mapped_column(String(20))  # approve, reject, request_changes
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
