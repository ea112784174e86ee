"""Secrets encrypted at rest (docs/configuration.md, "Encryption keys").

Signing secrets Herald must use again (webhook endpoints', sequences') cannot be hashed like
API keys, so they are stored encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
`cryptography`) under the keys of `HERALD_SECURITY__ENCRYPTION_KEYS`: a comma-separated list
where the first key encrypts and every key decrypts (`MultiFernet`). Rotation: put a new key
first, keep the old ones, run `herald secrets reencrypt`, then drop the old keys.

Columns declared `EncryptedText` encrypt on write and decrypt on read, so the rest of the
code handles plaintext. The keyring is process-wide: `create_app` and the worker configure it
from their settings; anything else (migrations, the CLI) reads it from the environment on
first use. Outside production, with no key set, a key is generated once and kept in
`<data_dir>/encryption-key` (like `herald dev`'s admin key).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from app.config import Settings

KEY_FILE_NAME = "encryption-key"
ENV_VAR = "HERALD_SECURITY__ENCRYPTION_KEYS"


class SecretsUnreadable(RuntimeError):
    """A stored secret does not decrypt with any configured key."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def parse_keys(value: str) -> list[str]:
    """Split and validate a comma-separated key list (ValueError naming the bad position)."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise ValueError("no key given")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "generate one with `herald secrets generate-key`)"
            ) from None
    return keys


class Keyring:
    """MultiFernet over the configured keys: the first encrypts, all decrypt."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._readable(self._fernet.decrypt, token)

    def rotate(self, token: str) -> str:
        """The same secret encrypted under the first key."""
        return self._readable(self._fernet.rotate, token)

    @staticmethod
    def _readable(operation: Callable[[bytes], bytes], token: str) -> str:
        try:
            return operation(token.encode()).decode()
        except InvalidToken:
            raise SecretsUnreadable(
                f"A stored secret does not decrypt with any key of {ENV_VAR}: a key that "
                "encrypted it was removed. Put it back (any position after the first)."
            ) from None


def keys_from_settings(settings: Settings) -> list[str]:
    configured = settings.security.encryption_keys
    if configured is not None:
        return parse_keys(configured.get_secret_value())
    if settings.environment == "production":  # Settings refuses this already; belt and braces
        raise RuntimeError(f"{ENV_VAR} must be set in production")
    return [dev_key(Path(settings.data_dir))]


def dev_key(data_dir: Path) -> str:
    """The development key kept in `<data_dir>/encryption-key`, created on first use."""
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


class _Process:
    """The process's keyring and the settings it is built from."""

    settings: Settings | None = None
    keyring: Keyring | None = None


def configure(settings: Settings) -> None:
    """Use `settings`' keys in this process (app and worker start-up). The keyring is built
    on first use, so a process that never touches a secret never creates a dev key file."""
    _Process.settings, _Process.keyring = settings, None


def keyring() -> Keyring:
    if _Process.keyring is None:
        from app.config import get_settings

        _Process.keyring = Keyring(keys_from_settings(_Process.settings or get_settings()))
    return _Process.keyring


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext)


def decrypt(token: str) -> str:
    return keyring().decrypt(token)


class EncryptedText(TypeDecorator[str]):
    """A text column holding a Fernet token; Python sees the plaintext."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(str(value))


def encrypted_columns(metadata: sa.MetaData) -> list[tuple[str, str]]:
    """(table, column) of every `EncryptedText` column (what `herald secrets reencrypt`
    rewrites)."""
    return [
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, EncryptedText)
    ]


def rewrite_column(
    connection: Connection,
    table: str,
    column: str,
    change: Callable[[str], str],
) -> int:
    """Apply `change` to every non-null value of `table.column` (rows keyed by `id`), reading
    and writing the stored text as is (no type decoration). Used by the migration that
    encrypted the existing secrets (and its downgrade) and by `herald secrets reencrypt`.
    Returns the rows rewritten."""
    rows_table = sa.table(table, sa.column("id"), sa.column(column, Text))
    stored = rows_table.c[column]
    query = sa.select(rows_table.c.id, stored).where(stored.is_not(None)).with_for_update()
    rows = connection.execute(query).all()
    for row_id, value in rows:
        connection.execute(
            sa.update(rows_table).where(rows_table.c.id == row_id).values({column: change(value)})
        )
    return len(rows)
