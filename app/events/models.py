"""Events: what contacts did. They drive segments, sequence waits, goals and attribution."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.repository import WorkspaceEntity


class Event(WorkspaceEntity, Base):
    __tablename__ = "events"
    __table_args__ = (
        # A client event id is a dedup key: a resend returns the original.
        Index(
            "uq_events_workspace_client_event_id",
            "workspace_id",
            "client_event_id",
            unique=True,
            postgresql_where=text("client_event_id IS NOT NULL"),
        ),
        # "did X (N times) within D" per contact: contact, type, time.
        Index("ix_events_contact_type_time", "contact_id", "type", "occurred_at"),
        # "who did X within D" set-wise: workspace, type, time -> contact (and revenue, for
        # segment `revenue` filters served index-only).
        Index(
            "ix_events_workspace_type_time",
            "workspace_id",
            "type",
            "occurred_at",
            postgresql_include=["contact_id", "revenue"],
        ),
    )

    # Not indexed on its own: `ix_events_workspace_type_time` leads with it (one index fewer
    # to maintain per ingested event). No foreign key either: the contact's (cascading from
    # the workspace through its contacts) is the one referential check per ingested event
    # (migration 0013).
    workspace_id: Mapped[uuid.UUID] = mapped_column()
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(200))
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    revenue: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    occurred_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()
    source: Mapped[str | None] = mapped_column(String(100))
    client_event_id: Mapped[str | None] = mapped_column(String(255))
