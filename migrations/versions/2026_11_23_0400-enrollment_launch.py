"""Enrollments for fast launches: one composite foreign key (version, sequence, workspace) in
place of three single ones, no index on workspace_id alone, the unique "live" index led by
contact_id (it absorbs ix_enrollments_live_contact), and a plain contact_id index for the
contact-delete cascade and the privacy export (which read finished rows too). docs/benchmarks.md (Launch) and
docs/indexes.md (Enrollments) give the measurements and the queries each index serves.

Revision ID: 0012_enrollment_launch
Revises: 0011_experiments
Create Date: 2026-11-23 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_enrollment_launch"
down_revision: str | None = "0011_experiments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNFINISHED = sa.text("state IN ('active', 'waiting', 'paused')")
LIVE = sa.text("state IN ('active', 'waiting')")


def upgrade() -> None:
    op.create_unique_constraint(
        "uq_sequence_versions_id_sequence_workspace",
        "sequence_versions",
        ["id", "sequence_id", "workspace_id"],
    )
    # Added NOT VALID, then validated: the validation scan of existing rows does not block
    # writes to enrollments (SHARE UPDATE EXCLUSIVE), new rows are checked from the start.
    op.execute(
        "ALTER TABLE enrollments ADD CONSTRAINT fk_enrollments_version_sequence_workspace"
        " FOREIGN KEY (sequence_version_id, sequence_id, workspace_id)"
        " REFERENCES sequence_versions (id, sequence_id, workspace_id) ON DELETE CASCADE"
        " NOT VALID"
    )
    op.execute(
        "ALTER TABLE enrollments VALIDATE CONSTRAINT fk_enrollments_version_sequence_workspace"
    )
    op.drop_constraint(
        "fk_enrollments_sequence_version_id_sequence_versions", "enrollments", type_="foreignkey"
    )
    op.drop_constraint("fk_enrollments_sequence_id_sequences", "enrollments", type_="foreignkey")
    op.drop_constraint("fk_enrollments_workspace_id_workspaces", "enrollments", type_="foreignkey")
    op.drop_index("ix_enrollments_workspace_id", table_name="enrollments")
    op.drop_index("ix_enrollments_live_contact", table_name="enrollments", postgresql_where=LIVE)
    op.drop_index("uq_enrollments_live", table_name="enrollments", postgresql_where=UNFINISHED)
    op.create_index(
        "uq_enrollments_live",
        "enrollments",
        ["contact_id", "sequence_id", "campaign_id"],
        unique=True,
        postgresql_nulls_not_distinct=True,
        postgresql_where=UNFINISHED,
    )
    op.create_index("ix_enrollments_contact", "enrollments", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_enrollments_contact", table_name="enrollments")
    op.drop_index("uq_enrollments_live", table_name="enrollments", postgresql_where=UNFINISHED)
    op.create_index(
        "uq_enrollments_live",
        "enrollments",
        ["sequence_id", "contact_id", "campaign_id"],
        unique=True,
        postgresql_nulls_not_distinct=True,
        postgresql_where=UNFINISHED,
    )
    op.create_index(
        "ix_enrollments_live_contact",
        "enrollments",
        ["contact_id"],
        unique=False,
        postgresql_where=LIVE,
    )
    op.create_index("ix_enrollments_workspace_id", "enrollments", ["workspace_id"], unique=False)
    op.create_foreign_key(
        "fk_enrollments_workspace_id_workspaces",
        "enrollments",
        "workspaces",
        ["workspace_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_enrollments_sequence_id_sequences",
        "enrollments",
        "sequences",
        ["sequence_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_enrollments_sequence_version_id_sequence_versions",
        "enrollments",
        "sequence_versions",
        ["sequence_version_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_constraint(
        "fk_enrollments_version_sequence_workspace", "enrollments", type_="foreignkey"
    )
    op.drop_constraint(
        "uq_sequence_versions_id_sequence_workspace", "sequence_versions", type_="unique"
    )
