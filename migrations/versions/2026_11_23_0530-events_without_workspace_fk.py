"""Events keep one foreign key (contact), not two: the workspace foreign key was a second
referential check (an SPI query and a KEY SHARE lock on the workspace row) for every ingested
event, about half of the ~13 ms that foreign keys cost a 1,000-event batch, and it protected
nothing the contact key does not: deleting a workspace deletes its contacts, which cascade to
their events. docs/benchmarks.md (Audience: event ingestion) has the measurement.

Revision ID: 0013_events_without_workspace_fk
Revises: 0012_enrollment_launch
Create Date: 2026-11-23 05:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_events_without_workspace_fk"
down_revision: str | None = "0012_enrollment_launch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("fk_events_workspace_id_workspaces", "events", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(
        "fk_events_workspace_id_workspaces",
        "events",
        "workspaces",
        ["workspace_id"],
        ["id"],
        ondelete="CASCADE",
    )
