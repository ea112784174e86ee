"""Audience: contacts, consent, suppressions, imports, events, segments.

Revision ID: 0002_audience
Revises: 0001_foundation
Create Date: 2026-11-22 21:44:45.244619+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_audience"
down_revision: str | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_imports",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("processed_rows", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("updated_count", sa.Integer(), nullable=False),
        sa.Column("unchanged_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_contact_imports_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_imports")),
    )
    op.create_index(
        op.f("ix_contact_imports_workspace_id"), "contact_imports", ["workspace_id"], unique=False
    )
    op.create_table(
        "contacts",
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "erased_at IS NOT NULL OR external_id IS NOT NULL OR email IS NOT NULL",
            name=op.f("ck_contacts_identified"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_contacts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    op.create_index(
        "ix_contacts_attributes", "contacts", ["attributes"], unique=False, postgresql_using="gin"
    )
    op.create_index(
        "ix_contacts_workspace_created", "contacts", ["workspace_id", "created_at"], unique=False
    )
    op.create_index(op.f("ix_contacts_workspace_id"), "contacts", ["workspace_id"], unique=False)
    op.create_index(
        "ix_contacts_workspace_last_activity",
        "contacts",
        ["workspace_id", "last_activity_at"],
        unique=False,
    )
    op.create_index(
        "uq_contacts_workspace_email",
        "contacts",
        ["workspace_id", "email"],
        unique=True,
        postgresql_where=sa.text("email IS NOT NULL"),
    )
    op.create_index(
        "uq_contacts_workspace_external_id",
        "contacts",
        ["workspace_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "segments",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rule", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segments_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    op.create_index(op.f("ix_segments_workspace_id"), "segments", ["workspace_id"], unique=False)
    op.create_table(
        "suppressions",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_suppressions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint(
            "workspace_id",
            "channel",
            "address_hash",
            name=op.f("uq_suppressions_workspace_id_channel_address_hash"),
        ),
    )
    op.create_index(
        op.f("ix_suppressions_workspace_id"), "suppressions", ["workspace_id"], unique=False
    )
    op.create_table(
        "consent_changes",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_consent_changes_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_consent_changes_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_changes")),
    )
    op.create_index(
        "ix_consent_changes_contact", "consent_changes", ["contact_id", "changed_at"], unique=False
    )
    op.create_index(
        op.f("ix_consent_changes_workspace_id"), "consent_changes", ["workspace_id"], unique=False
    )
    op.create_table(
        "contact_consents",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_consents_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_contact_consents_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "channel", name=op.f("pk_contact_consents")),
    )
    op.create_index(
        op.f("ix_contact_consents_workspace_id"), "contact_consents", ["workspace_id"], unique=False
    )
    op.create_table(
        "contact_import_chunks",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["contact_imports.id"],
            name=op.f("fk_contact_import_chunks_import_id_contact_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "seq", name=op.f("pk_contact_import_chunks")),
    )
    op.create_table(
        "contact_import_errors",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["contact_imports.id"],
            name=op.f("fk_contact_import_errors_import_id_contact_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "import_id", "row_number", "field", name=op.f("pk_contact_import_errors")
        ),
    )
    op.create_table(
        "events",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("revenue", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("client_event_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_events_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(
        "ix_events_contact_type_time", "events", ["contact_id", "type", "occurred_at"], unique=False
    )
    op.create_index(op.f("ix_events_workspace_id"), "events", ["workspace_id"], unique=False)
    op.create_index(
        "ix_events_workspace_type_time",
        "events",
        ["workspace_id", "type", "occurred_at"],
        unique=False,
        postgresql_include=["contact_id"],
    )
    op.create_index(
        "uq_events_workspace_client_event_id",
        "events",
        ["workspace_id", "client_event_id"],
        unique=True,
        postgresql_where=sa.text("client_event_id IS NOT NULL"),
    )
    op.create_table(
        "segment_count_snapshots",
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_count_snapshots_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_count_snapshots_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", "taken_at", name=op.f("pk_segment_count_snapshots")),
    )
    op.create_index(
        op.f("ix_segment_count_snapshots_workspace_id"),
        "segment_count_snapshots",
        ["workspace_id"],
        unique=False,
    )
    op.create_table(
        "segment_membership_changes",
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_segment_membership_changes_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_membership_changes_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_membership_changes_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_membership_changes")),
    )
    op.create_index(
        "ix_segment_membership_changes_contact",
        "segment_membership_changes",
        ["contact_id"],
        unique=False,
    )
    op.create_index(
        "ix_segment_membership_changes_segment_time",
        "segment_membership_changes",
        ["segment_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_segment_membership_changes_workspace_id"),
        "segment_membership_changes",
        ["workspace_id"],
        unique=False,
    )
    op.create_table(
        "segment_memberships",
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_segment_memberships_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_memberships_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_memberships_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", "contact_id", name=op.f("pk_segment_memberships")),
    )
    op.create_index(
        "ix_segment_memberships_contact", "segment_memberships", ["contact_id"], unique=False
    )
    op.create_index(
        op.f("ix_segment_memberships_workspace_id"),
        "segment_memberships",
        ["workspace_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_segment_memberships_workspace_id"), table_name="segment_memberships")
    op.drop_index("ix_segment_memberships_contact", table_name="segment_memberships")
    op.drop_table("segment_memberships")
    op.drop_index(
        op.f("ix_segment_membership_changes_workspace_id"), table_name="segment_membership_changes"
    )
    op.drop_index(
        "ix_segment_membership_changes_segment_time", table_name="segment_membership_changes"
    )
    op.drop_index("ix_segment_membership_changes_contact", table_name="segment_membership_changes")
    op.drop_table("segment_membership_changes")
    op.drop_index(
        op.f("ix_segment_count_snapshots_workspace_id"), table_name="segment_count_snapshots"
    )
    op.drop_table("segment_count_snapshots")
    op.drop_index(
        "uq_events_workspace_client_event_id",
        table_name="events",
        postgresql_where=sa.text("client_event_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_events_workspace_type_time", table_name="events", postgresql_include=["contact_id"]
    )
    op.drop_index(op.f("ix_events_workspace_id"), table_name="events")
    op.drop_index("ix_events_contact_type_time", table_name="events")
    op.drop_table("events")
    op.drop_table("contact_import_errors")
    op.drop_table("contact_import_chunks")
    op.drop_index(op.f("ix_contact_consents_workspace_id"), table_name="contact_consents")
    op.drop_table("contact_consents")
    op.drop_index(op.f("ix_consent_changes_workspace_id"), table_name="consent_changes")
    op.drop_index("ix_consent_changes_contact", table_name="consent_changes")
    op.drop_table("consent_changes")
    op.drop_index(op.f("ix_suppressions_workspace_id"), table_name="suppressions")
    op.drop_table("suppressions")
    op.drop_index(op.f("ix_segments_workspace_id"), table_name="segments")
    op.drop_table("segments")
    op.drop_index(
        "uq_contacts_workspace_external_id",
        table_name="contacts",
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_contacts_workspace_email",
        table_name="contacts",
        postgresql_where=sa.text("email IS NOT NULL"),
    )
    op.drop_index("ix_contacts_workspace_last_activity", table_name="contacts")
    op.drop_index(op.f("ix_contacts_workspace_id"), table_name="contacts")
    op.drop_index("ix_contacts_workspace_created", table_name="contacts")
    op.drop_index("ix_contacts_attributes", table_name="contacts", postgresql_using="gin")
    op.drop_table("contacts")
    op.drop_index(op.f("ix_contact_imports_workspace_id"), table_name="contact_imports")
    op.drop_table("contact_imports")
