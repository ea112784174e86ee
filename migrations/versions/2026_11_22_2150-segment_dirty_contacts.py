"""Segments: dirty contacts queue; changes list index.

Revision ID: 0003_segments_dirty_contacts
Revises: 0002_audience
Create Date: 2026-11-22 21:50:41.157598+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_segments_dirty_contacts"
down_revision: str | None = "0002_audience"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment_dirty_contacts",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_dirty_contacts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "contact_id", name=op.f("pk_segment_dirty_contacts")
        ),
    )
    op.create_index(
        "ix_segment_membership_changes_segment_id",
        "segment_membership_changes",
        ["segment_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_segment_membership_changes_segment_id", table_name="segment_membership_changes"
    )
    op.drop_table("segment_dirty_contacts")
