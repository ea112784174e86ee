"""Segment `revenue` filters index-only: add `revenue` to `ix_events_workspace_type_time`.

The segment compiler compiles a numeric comparison on the `revenue` property to the typed
`events.revenue` column; with the column in the INCLUDE list the set-wise "who did X with
revenue > N within D" subquery is an index-only scan instead of a heap visit per event
(docs/indexes.md). The new index is built under a temporary name first so that the old one
keeps serving reads during the build, then swapped in.

Revision ID: 0005_events_revenue_include
Revises: 0004_ingestion_indexes
Create Date: 2026-11-22 23:10:23.403666+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_events_revenue_include"
down_revision: str | None = "0004_ingestion_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _swap(include: list[str]) -> None:
    op.create_index(
        "ix_events_workspace_type_time_swap",
        "events",
        ["workspace_id", "type", "occurred_at"],
        unique=False,
        postgresql_include=include,
    )
    op.drop_index("ix_events_workspace_type_time", table_name="events")
    op.execute(
        "ALTER INDEX ix_events_workspace_type_time_swap RENAME TO ix_events_workspace_type_time"
    )


def upgrade() -> None:
    _swap(["contact_id", "revenue"])


def downgrade() -> None:
    _swap(["contact_id"])
