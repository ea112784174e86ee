"""Signing secrets are stored encrypted (issue 16): webhook endpoints' `secret` and
`previous_secret` and sequences' `signing_secret` become text columns holding Fernet tokens
under `HERALD_SECURITY__ENCRYPTION_KEYS` (app/core/encryption.py); the rows already there are
encrypted in place. The downgrade decrypts them back into the `varchar(100)` columns, so it
needs a key that decrypts them.

Revision ID: 0015_encrypt_signing_secrets
Revises: 0014_journal_outlives_contacts
Create Date: 2026-12-04 23:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.encryption import keyring, rewrite_column

revision: str = "0015_encrypt_signing_secrets"
down_revision: str | None = "0014_journal_outlives_contacts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable) as they stand at this revision (not read from the models).
SECRETS = (
    ("webhook_endpoints", "secret", False),
    ("webhook_endpoints", "previous_secret", True),
    ("sequences", "signing_secret", False),
)


def upgrade() -> None:
    ring = keyring()
    connection = op.get_bind()
    for table, column, nullable in SECRETS:
        op.alter_column(
            table, column, type_=sa.Text(), existing_type=sa.String(100), existing_nullable=nullable
        )
        rewrite_column(connection, table, column, ring.encrypt)


def downgrade() -> None:
    ring = keyring()
    connection = op.get_bind()
    for table, column, nullable in SECRETS:
        rewrite_column(connection, table, column, ring.decrypt)
        op.alter_column(
            table, column, type_=sa.String(100), existing_type=sa.Text(), existing_nullable=nullable
        )
