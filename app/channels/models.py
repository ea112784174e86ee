"""Outbound messages: one row per (enrollment, step, visit). The row is the outbox (the
delivery job works from it), the record of what was sent, and the unit of metrics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.repository import WorkspaceEntity

MESSAGE_CHANNELS = ("email", "sms", "webhook")
# queued -> sending -> sent -> delivered | bounced; failed (permanent error or retries spent);
# unknown (SMTP accepted-or-not is unknowable after a crash mid-send: never resent).
MESSAGE_STATUSES = ("queued", "sending", "sent", "delivered", "bounced", "failed", "unknown")
PENDING_STATUSES = ("queued", "sending")


class Message(WorkspaceEntity, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint(
            "enrollment_id", "step_key", "visit", name="uq_messages_enrollment_step_visit"
        ),
        # The delivery scan: pending messages whose attempt (or lease) is due.
        Index(
            "ix_messages_pending",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'sending')"),
        ),
        # Frequency caps: a contact's recent messages on a channel.
        Index("ix_messages_contact_channel_time", "contact_id", "channel", "created_at"),
        Index("ix_messages_workspace_page", "workspace_id", "id"),
        Index("ix_messages_enrollment", "enrollment_id"),
        Index(
            "ix_messages_provider_message_id",
            "provider_message_id",
            postgresql_where=text("provider_message_id IS NOT NULL"),
        ),
    )

    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    sequence_id: Mapped[uuid.UUID] = mapped_column()
    campaign_id: Mapped[uuid.UUID | None] = mapped_column()
    step_key: Mapped[str] = mapped_column(String(100))
    visit: Mapped[int] = mapped_column(Integer, default=1)
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(32))
    template_version_id: Mapped[uuid.UUID | None] = mapped_column()
    variant: Mapped[str | None] = mapped_column(String(64))
    recipient: Mapped[str | None] = mapped_column(String(2048))  # address, phone or URL
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)  # rendered content / payload
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    # Outcome of a webhook step's call (status, latency, response excerpt), or provider data.
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    due_at: Mapped[datetime] = mapped_column()  # when the step was scheduled to run
    created_at: Mapped[datetime] = mapped_column()
    # When it was last handed to its provider (the delivery claim): a reply cannot precede it.
    offered_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()  # the provider's acceptance
    delivered_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()
    bounced_at: Mapped[datetime | None] = mapped_column()
    first_opened_at: Mapped[datetime | None] = mapped_column()
    first_clicked_at: Mapped[datetime | None] = mapped_column()
    replied_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
