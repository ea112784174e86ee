"""Outbound webhooks: endpoints, the event outbox, one delivery per (endpoint, event) and the
log of every attempt.

An event row and its delivery rows are written in the transaction of the change that caused
them (`app/outbox/emit.py`), so a rolled-back change emits nothing. Deliveries are the
per-endpoint queues: each endpoint's due rows are worked by that endpoint's own job.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin
from app.core.encryption import EncryptedText
from app.core.repository import WorkspaceEntity

DELIVERY_STATUSES = ("pending", "succeeded", "failed")
# success: 2xx; http_error: any other status (3xx included: never followed); rate_limited:
# 429; timeout; connection_error; refused: the SSRF guard stopped it before connecting.
ATTEMPT_OUTCOMES = (
    "success",
    "http_error",
    "rate_limited",
    "timeout",
    "connection_error",
    "refused",
)


class WebhookEndpoint(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_workspace_page", "workspace_id", "id"),
        # emit(): the enabled endpoints of a workspace whose filters overlap the event's.
        Index(
            "ix_webhook_endpoints_enabled",
            "workspace_id",
            postgresql_where=text("enabled"),
        ),
    )

    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(1000))
    # Exact types (`campaign.launched`), family wildcards (`campaign.*`) or `*` for all.
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    # Every attempt signs with it, so it cannot be hashed: stored encrypted
    # (app/core/encryption.py, like the sequences' signing secrets), plaintext in Python.
    secret: Mapped[str] = mapped_column(EncryptedText)
    # During a rotation's overlap both signatures are sent.
    previous_secret: Mapped[str | None] = mapped_column(EncryptedText)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column()
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    disabled_at: Mapped[datetime | None] = mapped_column()
    rate_limit_per_second: Mapped[int | None] = mapped_column(Integer)
    # Start of the current run of failed attempts (cleared by a success): auto-disable after
    # `webhooks.disable_after_failing_days` of continuous failure.
    failing_since: Mapped[datetime | None] = mapped_column()
    last_success_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


class WebhookEvent(WorkspaceEntity, Base):
    """The outbox: one row per emitted event that at least one endpoint subscribed to."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_workspace_page", "workspace_id", "id"),
        Index("ix_webhook_events_occurred_at", "occurred_at"),
    )

    type: Mapped[str] = mapped_column(String(100))
    # The envelope exactly as delivered: {"type", "version", "timestamp", "data"}.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column()


class WebhookDelivery(WorkspaceEntity, Base):
    """One event for one endpoint: its state, its retry schedule and its lease."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        # The endpoint's queue: pending rows by due time.
        Index(
            "ix_webhook_deliveries_due",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # The dispatcher's scan: which endpoints have due work.
        Index(
            "ix_webhook_deliveries_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint_page", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_event", "event_id"),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))  # pending, succeeded, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()


class WebhookAttempt(WorkspaceEntity, Base):
    """One HTTP attempt (or a refusal before connecting): the delivery log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
        Index("ix_webhook_attempts_endpoint_page", "endpoint_id", "id"),
    )

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(32))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)  # first 1 KiB of the body
    error: Mapped[str | None] = mapped_column(Text)
