"""Metric storage: append-only deltas (written by database triggers), folded rollups, the
per-event facts (opens, clicks, replies, conversions) and the queue of events to examine.

Every row is keyed by (workspace, campaign, sequence, step_key, variant, channel, hour bucket).
Dimensions that do not apply are stored as '' (enrollment rows have no step, variant or
channel), so the key is a plain primary key without NULLs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

# Every counter, in storage order. `revenue` (numeric) comes after them.
COUNTERS = (
    "enrolled",
    "completed",
    "exited",
    "unsubscribed",
    "sent",
    "delivered",
    "bounced",
    "failed",
    "unknown",
    "opened",
    "clicked",
    "replied",
    "opens",
    "clicks",
    "replies",
    "converted",
)
KEY_COLUMNS = ("workspace_id", "campaign_id", "sequence_id", "step_key", "variant", "channel")
FACT_KINDS = ("open", "click", "reply", "conversion")
AUTOVACUUM = {"autovacuum_vacuum_scale_factor": "0", "autovacuum_vacuum_threshold": "5000"}


def _counter() -> Mapped[int]:
    return mapped_column(BigInteger, default=0, server_default=text("0"))


class _MetricRow:
    workspace_id: Mapped[uuid.UUID] = mapped_column()
    campaign_id: Mapped[uuid.UUID] = mapped_column()
    sequence_id: Mapped[uuid.UUID] = mapped_column()
    step_key: Mapped[str] = mapped_column(String(100))
    variant: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[datetime] = mapped_column()  # start of the UTC hour
    enrolled: Mapped[int] = _counter()
    completed: Mapped[int] = _counter()
    exited: Mapped[int] = _counter()
    unsubscribed: Mapped[int] = _counter()
    sent: Mapped[int] = _counter()
    delivered: Mapped[int] = _counter()
    bounced: Mapped[int] = _counter()
    failed: Mapped[int] = _counter()
    unknown: Mapped[int] = _counter()
    opened: Mapped[int] = _counter()
    clicked: Mapped[int] = _counter()
    replied: Mapped[int] = _counter()
    opens: Mapped[int] = _counter()
    clicks: Mapped[int] = _counter()
    replies: Mapped[int] = _counter()
    converted: Mapped[int] = _counter()
    revenue: Mapped[Decimal] = mapped_column(Numeric(18, 4), default=0, server_default=text("0"))


class MetricDelta(_MetricRow, Base):
    """Signed changes appended by statement-level triggers; the fold job sums them into
    `metric_rollups` and deletes them. No index besides the id: the table stays small."""

    __tablename__ = "metric_deltas"
    # Rows live about a second: vacuum after a few thousand dead ones, not 20% of the table.
    __table_args__ = ({"postgresql_with": AUTOVACUUM},)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)


class MetricRollup(_MetricRow, Base):
    """Folded totals; written only by the fold (one writer, no contention)."""

    __tablename__ = "metric_rollups"
    __table_args__ = (
        Index(
            "uq_metric_rollups_key",
            "workspace_id",
            "campaign_id",
            "sequence_id",
            "step_key",
            "variant",
            "channel",
            "bucket",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)


class MetricPendingEvent(Base):
    """Events that may count (email.* tracking events, campaign goal events), queued by a
    trigger on `events` until the fold turns them into facts."""

    __tablename__ = "metric_pending_events"
    __table_args__ = (
        Index("ix_metric_pending_events_workspace", "workspace_id"),
        Index("ix_metric_pending_events_received", "received_at"),
        {"postgresql_with": AUTOVACUUM},
    )

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()


class MetricEventFact(Base):
    """What one event counted for: an open, click or reply of a message, or a conversion of
    a campaign (credited to its last touch). Deleted with the event (erasure), and a trigger
    then appends the negative delta, so rollups follow deletions too."""

    __tablename__ = "metric_event_facts"
    __table_args__ = (Index("ix_metric_event_facts_campaign", "campaign_id", "kind"),)

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column()
    contact_id: Mapped[uuid.UUID] = mapped_column()
    message_id: Mapped[uuid.UUID] = mapped_column()
    sequence_id: Mapped[uuid.UUID] = mapped_column()
    step_key: Mapped[str] = mapped_column(String(100))
    variant: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[datetime] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column()
    revenue: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
