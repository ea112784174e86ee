"""Templates (a draft edited in place) and their immutable published versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin
from app.core.repository import WorkspaceEntity

TEMPLATE_CHANNELS = ("email", "sms", "webhook")


class Template(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "templates"

    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))  # email, sms, webhook
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, default=1)  # ETag source
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the current draft
    published_version: Mapped[int | None] = mapped_column(Integer)  # latest published number


class TemplateVersion(WorkspaceEntity, Base):
    """One published version: never updated, deleted only with its template."""

    __tablename__ = "template_versions"
    __table_args__ = (
        UniqueConstraint("template_id", "number", name="uq_template_versions_template_number"),
        Index("ix_template_versions_template_id", "template_id", "id"),
    )

    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    undefined_fields: Mapped[list[str]] = mapped_column(JSONB, default=list)
    published_at: Mapped[datetime] = mapped_column()
