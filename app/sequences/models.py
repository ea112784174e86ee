"""Sequences (an editable draft), their immutable published versions, enrollments (one
contact's run through one version) and the enrollment history (the timeline)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin
from app.core.repository import WorkspaceEntity

# An enrollment is live while `active` (a step is due at `next_action_at`) or `waiting`
# (in a `wait_for_event` step until an event or the timeout at `next_action_at`).
LIVE_STATES = ("active", "waiting")
# `paused`: held by a campaign pause (the scan skips it); resume restores active/waiting.
ENROLLMENT_STATES = (*LIVE_STATES, "paused", "completed", "exited", "failed")
UNFINISHED = "state IN ('active', 'waiting', 'paused')"


class Sequence(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "sequences"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    version: Mapped[int] = mapped_column(Integer, default=1)  # ETag source
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the current draft
    published_version: Mapped[int | None] = mapped_column(Integer)  # latest published number
    # Standard Webhooks secret (`whsec_...`) signing the `webhook` steps' calls.
    signing_secret: Mapped[str] = mapped_column(String(100))


class SequenceVersion(WorkspaceEntity, Base):
    """One published version: never updated, never deleted while enrollments use it."""

    __tablename__ = "sequence_versions"
    __table_args__ = (
        UniqueConstraint("sequence_id", "number", name="uq_sequence_versions_sequence_number"),
        Index("ix_sequence_versions_sequence_id", "sequence_id", "id"),
    )

    sequence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)  # validated, normalised
    published_at: Mapped[datetime] = mapped_column()


class Enrollment(WorkspaceEntity, Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        # The scheduler scan: due live work only, in time order. Waiting rows whose time is
        # far away sit past the scan's upper bound, so the scan's cost follows due work.
        Index(
            "ix_enrollments_due",
            "next_action_at",
            postgresql_where=text("state IN ('active', 'waiting')"),
        ),
        # One unfinished enrollment per (sequence, contact, campaign): API enrollment and
        # launch are idempotent through it.
        Index(
            "uq_enrollments_live",
            "sequence_id",
            "contact_id",
            "campaign_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
            postgresql_where=text(UNFINISHED),
        ),
        # Waking waits and exit checks on event ingestion: by contact, live rows only.
        Index(
            "ix_enrollments_live_contact",
            "contact_id",
            postgresql_where=text("state IN ('active', 'waiting')"),
        ),
        Index("ix_enrollments_sequence", "sequence_id", "id"),
        Index(
            "ix_enrollments_campaign",
            "campaign_id",
            postgresql_where=text("campaign_id IS NOT NULL"),
        ),
        # Every pass and lease rewrites the row; free space on each page lets most of those
        # updates stay HOT (no new entries in the table's indexes). Measured: lease_due 60 ->
        # 34 ms for 1,000 due rows (docs/benchmarks.md).
        {"postgresql_with": {"fillfactor": 80}},
    )

    sequence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    sequence_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sequence_versions.id", ondelete="CASCADE")
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    # Set by campaign launches and triggers (the campaigns issue adds the foreign key).
    campaign_id: Mapped[uuid.UUID | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(16))  # api, campaign, trigger
    state: Mapped[str] = mapped_column(String(16))
    step_key: Mapped[str | None] = mapped_column(String(100))  # the step due next
    # How many times the current step has been entered (cycles through waits revisit steps);
    # part of the message's uniqueness key.
    step_visit: Mapped[int] = mapped_column(Integer, default=1)
    step_entered_at: Mapped[datetime] = mapped_column()
    next_action_at: Mapped[datetime | None] = mapped_column()
    # The scan leases due rows to a batch job; a lease past its time is re-driven.
    lease_until: Mapped[datetime | None] = mapped_column()
    # `wait_for_event`: what wakes this enrollment early.
    wait_event_type: Mapped[str | None] = mapped_column(String(200))
    # Event types that end this enrollment (its version's exit rules), so ingestion can wake
    # exactly the enrollments an event concerns.
    exit_events: Mapped[list[str] | None] = mapped_column(ARRAY(String(200)))
    visits: Mapped[dict[str, int]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    exit_reason: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class EnrollmentStep(WorkspaceEntity, Base):
    """One thing the engine did for an enrollment (the per-enrollment timeline)."""

    __tablename__ = "enrollment_steps"
    __table_args__ = (Index("ix_enrollment_steps_enrollment", "enrollment_id", "id"),)

    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    step_key: Mapped[str | None] = mapped_column(String(100))
    step_type: Mapped[str | None] = mapped_column(String(32))
    visit: Mapped[int] = mapped_column(Integer, default=1)
    # What happened: entered, sent, waited, event, timeout, branched, updated, deferred,
    # skipped, exited, completed, failed.
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    due_at: Mapped[datetime | None] = mapped_column()  # when the step was scheduled
    occurred_at: Mapped[datetime] = mapped_column()
    message_id: Mapped[uuid.UUID | None] = mapped_column()
