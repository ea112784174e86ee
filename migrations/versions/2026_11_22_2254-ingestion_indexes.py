"""Cheaper event ingestion: drop indexes that duplicate a leading column or block HOT updates.

- `ix_contacts_workspace_id`, `ix_events_workspace_id`: covered by composite indexes that
  lead with `workspace_id`.
- `ix_contacts_workspace_last_activity`: every event batch rewrites `last_activity_at`; an
  index on it makes each of those updates write every contact index. Without it (and with 10%
  free space per page) the updates are HOT.

Revision ID: 0004_ingestion_indexes
Revises: 0003_segments_dirty_contacts
Create Date: 2026-11-22 22:54:45.886689+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_ingestion_indexes"
down_revision: str | None = "0003_segments_dirty_contacts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_contacts_workspace_id"), table_name="contacts")
    op.drop_index(op.f("ix_contacts_workspace_last_activity"), table_name="contacts")
    op.drop_index(op.f("ix_events_workspace_id"), table_name="events")
    op.execute("ALTER TABLE contacts SET (fillfactor = 90)")


def downgrade() -> None:
    op.execute("ALTER TABLE contacts RESET (fillfactor)")
    op.create_index(op.f("ix_events_workspace_id"), "events", ["workspace_id"], unique=False)
    op.create_index(
        op.f("ix_contacts_workspace_last_activity"),
        "contacts",
        ["workspace_id", "last_activity_at"],
        unique=False,
    )
    op.create_index(op.f("ix_contacts_workspace_id"), "contacts", ["workspace_id"], unique=False)
