"""Messages record when they were last handed to their provider (`offered_at`, set by the
delivery claim). A reply can only follow the handover, so a `wait_for_event` after a send
counts events from it, while its timeout runs from the acceptance (`sent_at`).

Revision ID: 0016_delivery_offered_at
Revises: 0015_encrypt_signing_secrets
Create Date: 2026-12-04 23:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_delivery_offered_at"
down_revision: str | None = "0015_encrypt_signing_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "offered_at")
