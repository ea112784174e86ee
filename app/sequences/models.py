"""Sequences (an editable draft), their immutable published versions, enrollments (one
contact's run through one version) and the enrollment history (the timeline)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin
from app.core.encryption import EncryptedText
from app.core.repository import WorkspaceEntity

# An enrollment is live while `active` (a step is due at `next_action_at`) or `waiting`
# (in a `wait_for_event` step until an event or the timeout at `next_action_at`).
LIVE_STATES = ("active", "waiting")
# `paused`: held by a campaign pause (the scan skips it); resume restores active/waiting.
ENROLLMENT_STATES = (*LIVE_STATES, "paused", "completed", "exited", "failed")
UNFINISHED_STATES = (*LIVE_STATES, "paused")
UNFINISHED = "state IN ('active', 'waiting', 'paused')"


class Sequence(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "sequences"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    version: Mapped[int] = mapped_column(Integer, default=1)  # ETag source
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the current draft
    published_version: Mapped[int | None] = mapped_column(Integer)  # latest published number
    # Standard Webhooks secret (`whsec_...`) signing the `webhook` steps' calls; stored
    # encrypted (app/core/encryption.py), plaintext in Python.
    signing_secret: Mapped[str] = mapped_column(EncryptedText)


class SequenceVersion(WorkspaceEntity, Base):
    """One published version: never updated, never deleted while enrollments use it."""

    __tablename__ = "sequence_versions"
    __table_args__ = (
        UniqueConstraint("sequence_id", "number", name="uq_sequence_versions_sequence_number"),
        # The target of enrollments' composite foreign key (version, sequence, workspace).
        UniqueConstraint(
            "id", "sequence_id", "workspace_id", name="uq_sequence_versions_id_sequence_workspace"
        ),
        Index("ix_sequence_versions_sequence_id", "sequence_id", "id"),
    )

    sequence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)  # validated, normalised
    published_at: Mapped[datetime] = mapped_column()


class Enrollment(WorkspaceEntity, Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        # One foreign key proves the version, its sequence and its workspace at once (the
        # version's own foreign keys prove those exist), one index probe per row where
        # separate keys on workspace_id and sequence_id cost two more per row at every
        # launch. Deleting a workspace or a sequence deletes its versions, which cascades
        # here (found by `ix_enrollments_sequence`). docs/indexes.md, Enrollments.
        ForeignKeyConstraint(
            ["sequence_version_id", "sequence_id", "workspace_id"],
            [
                "sequence_versions.id",
                "sequence_versions.sequence_id",
                "sequence_versions.workspace_id",
            ],
            name="fk_enrollments_version_sequence_workspace",
            ondelete="CASCADE",
        ),
        # The scheduler scan: due live work only, in time order. Waiting rows whose time is
        # far away sit past the scan's upper bound, so the scan's cost follows due work.
        Index(
            "ix_enrollments_due",
            "next_action_at",
            postgresql_where=text("state IN ('active', 'waiting')"),
        ),
        # One unfinished enrollment per (contact, sequence, campaign): API enrollment and
        # launch are idempotent through it. Contact first, so it also serves the lookups of
        # a contact's unfinished (or live: a subset) enrollments, event wake-ups and exits,
        # with only unfinished rows in it (it replaces ix_enrollments_live_contact).
        Index(
            "uq_enrollments_live",
            "contact_id",
            "sequence_id",
            "campaign_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
            postgresql_where=text(UNFINISHED),
        ),
        # Every enrollment of a contact, finished ones included: the cascade when a
        # contact is deleted, the privacy export, per-contact metrics. (Before 0012 only
        # partial indexes led with contact_id, and a contact delete scanned the table.)
        Index("ix_enrollments_contact", "contact_id"),
        # Listing a sequence's enrollments by id; `has_live_enrollments`; the cascade from
        # a deleted sequence (version).
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

    # No foreign key or index of its own: the composite key above covers it, and every
    # query names a sequence, campaign, contact or id besides the workspace.
    workspace_id: Mapped[uuid.UUID] = mapped_column()
    sequence_id: Mapped[uuid.UUID] = mapped_column()
    sequence_version_id: Mapped[uuid.UUID] = mapped_column()
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
