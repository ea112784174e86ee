"""Experiments on a campaign's send steps with variants: declared winners, automatic
declaration settings, and the running state of the always-valid statistics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.repository import WorkspaceEntity

METRICS = ("open", "click", "reply", "conversion")


class ExperimentDeclaration(WorkspaceEntity, Base):
    """A declared winner: one per (campaign, send step), manual or automatic. With
    `apply_to_remaining`, the engine sends the winner to every contact reaching the step
    from `declared_at` on."""

    __tablename__ = "experiment_declarations"
    __table_args__ = (
        UniqueConstraint("campaign_id", "step_key", name="uq_experiment_declarations_step"),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    sequence_id: Mapped[uuid.UUID] = mapped_column()
    sequence_version_id: Mapped[uuid.UUID | None] = mapped_column()
    step_key: Mapped[str] = mapped_column(String(100))
    variant: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(16))
    declared_by: Mapped[str] = mapped_column(String(16))  # manual, automatic
    apply_to_remaining: Mapped[bool] = mapped_column(Boolean)
    # The experiment as it stood when declared: per-variant counts, p-values, lift.
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    member_id: Mapped[uuid.UUID | None] = mapped_column()
    api_key_id: Mapped[uuid.UUID | None] = mapped_column()
    declared_at: Mapped[datetime] = mapped_column()


class ExperimentSetting(WorkspaceEntity, Base):
    """Automatic declaration for one send step: when every variant has `min_sample`
    exposures and the always-valid p-value is below `alpha`, the cron declares."""

    __tablename__ = "experiment_settings"
    __table_args__ = (
        UniqueConstraint("campaign_id", "step_key", name="uq_experiment_settings_step"),
        Index("ix_experiment_settings_auto", "id", postgresql_where=text("auto_declare")),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    step_key: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(16))
    auto_declare: Mapped[bool] = mapped_column(Boolean)
    min_sample: Mapped[int] = mapped_column(Integer)
    alpha: Mapped[float] = mapped_column(Float)
    apply_to_remaining: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ExperimentLook(WorkspaceEntity, Base):
    """The running always-valid figures of one treatment vs control on one metric: the
    minimum p-value and the intersection of the confidence-sequence intervals over every
    look so far (API reads and cron checks), so they only ever tighten."""

    __tablename__ = "experiment_looks"
    __table_args__ = (
        UniqueConstraint(
            "campaign_id", "step_key", "metric", "variant", name="uq_experiment_looks_arm"
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    step_key: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(16))
    variant: Mapped[str] = mapped_column(String(64))
    p_value: Mapped[float] = mapped_column(Float)
    interval_low: Mapped[float | None] = mapped_column(Float)
    interval_high: Mapped[float | None] = mapped_column(Float)
    looks: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column()
