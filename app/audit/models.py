"""The audit log: append-only (no UPDATE or DELETE path exists in the code)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.repository import WorkspaceEntity


class AuditEvent(WorkspaceEntity, Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_workspace", "workspace_id", "id"),
        Index("ix_audit_events_entity", "workspace_id", "entity_type", "entity_id", "id"),
    )

    occurred_at: Mapped[datetime] = mapped_column()
    actor_type: Mapped[str] = mapped_column(String(16))  # member, key, system
    member_id: Mapped[uuid.UUID | None] = mapped_column()  # no FK: the log outlives members
    api_key_id: Mapped[uuid.UUID | None] = mapped_column()
    action: Mapped[str] = mapped_column(String(64))  # e.g. campaign.submitted
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID | None] = mapped_column()
    # {"field": {"before": ..., "after": ...}} for edits
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(64))
