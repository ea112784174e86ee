"""The segment membership journal keeps a hard-deleted contact's history: its foreign key to
contacts (ON DELETE CASCADE) is dropped, so the `left` rows a contact deletion writes, and the
`entered` rows before them, stay listed by `GET /v1/segments/{id}/changes`. The rows hold ids
only; a deleted workspace or segment still takes its journal with it (those keys remain).

Revision ID: 0014_journal_outlives_contacts
Revises: 0013_events_without_workspace_fk
Create Date: 2026-11-23 13:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_journal_outlives_contacts"
down_revision: str | None = "0013_events_without_workspace_fk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "fk_segment_membership_changes_contact_id_contacts"


def upgrade() -> None:
    op.drop_constraint(CONSTRAINT, "segment_membership_changes", type_="foreignkey")


def downgrade() -> None:
    # Rows of contacts deleted since the upgrade would violate the key: they go first.
    op.execute(
        "DELETE FROM segment_membership_changes j"
        " WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = j.contact_id)"
    )
    op.create_foreign_key(
        CONSTRAINT,
        "segment_membership_changes",
        "contacts",
        ["contact_id"],
        ["id"],
        ondelete="CASCADE",
    )
