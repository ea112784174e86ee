"""Contacts, their consent (current + history), suppressions and bulk imports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

# The domain's words live in `vocabulary` (other domains import them from there); still
# named here for code that reads them next to the tables.
from app.contacts.vocabulary import CHANNELS as CHANNELS  # noqa: PLC0414 - re-export
from app.contacts.vocabulary import CONSENT_STATUSES as CONSENT_STATUSES  # noqa: PLC0414
from app.contacts.vocabulary import SUPPRESSION_REASONS as SUPPRESSION_REASONS  # noqa: PLC0414
from app.core.clock import utcnow
from app.core.db import Base, TimestampMixin
from app.core.repository import WorkspaceEntity, WorkspaceScoped


class Contact(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        # One contact per external id and per email in a workspace (NULLs don't collide).
        Index(
            "uq_contacts_workspace_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
        Index(
            "uq_contacts_workspace_email",
            "workspace_id",
            "email",
            unique=True,
            postgresql_where=text("email IS NOT NULL"),
        ),
        # Attribute conditions in segment rules (containment and key existence).
        Index("ix_contacts_attributes", "attributes", postgresql_using="gin"),
        Index("ix_contacts_workspace_created", "workspace_id", "created_at"),
        CheckConstraint(
            "erased_at IS NOT NULL OR external_id IS NOT NULL OR email IS NOT NULL",
            name="identified",
        ),
        {"postgresql_with": {"fillfactor": 90}},
    )

    # Not indexed on its own: `ix_contacts_workspace_created` leads with it. Event ingestion
    # rewrites `last_activity_at` on every batch; leaving that column unindexed (and pages
    # 10% free, see the fillfactor) keeps those updates HOT: no index writes at all.
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    last_activity_at: Mapped[datetime | None] = mapped_column()
    erased_at: Mapped[datetime | None] = mapped_column()


class ContactConsent(WorkspaceScoped, Base):
    """Current consent per contact and channel (history in `consent_changes`)."""

    __tablename__ = "contact_consents"

    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(45))
    changed_at: Mapped[datetime] = mapped_column()


class ConsentChange(WorkspaceEntity, Base):
    __tablename__ = "consent_changes"
    __table_args__ = (Index("ix_consent_changes_contact", "contact_id", "changed_at"),)

    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(45))
    changed_at: Mapped[datetime] = mapped_column()


class Suppression(WorkspaceEntity, Base):
    """Keyed by a hash of the normalised address, so it outlives erasure of the contact."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("workspace_id", "channel", "address_hash"),)

    channel: Mapped[str] = mapped_column(String(16))
    address_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactImport(TimestampMixin, WorkspaceEntity, Base):
    __tablename__ = "contact_imports"

    status: Mapped[str] = mapped_column(String(16))  # queued, running, completed, failed
    format: Mapped[str] = mapped_column(String(8))  # csv, ndjson
    filename: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    unchanged_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class ContactImportChunk(Base):
    """The uploaded file, stored in order in PostgreSQL so any worker can stream it."""

    __tablename__ = "contact_import_chunks"

    import_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contact_imports.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ContactImportError(Base):
    __tablename__ = "contact_import_errors"

    import_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contact_imports.id", ondelete="CASCADE"), primary_key=True
    )
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    field: Mapped[str] = mapped_column(String(200), primary_key=True)
    message: Mapped[str] = mapped_column(Text)
