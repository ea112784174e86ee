"""Signing secrets are encrypted at rest (app/core/encryption.py, docs/configuration.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from typer.testing import CliRunner

from app.admin import reencrypt_secrets
from app.cli import cli
from app.config import SecuritySettings, Settings
from app.core import encryption
from app.core.encryption import Keyring, SecretsUnreadable
from app.migrate import downgrade, upgrade
from app.outbox.models import WebhookEndpoint
from tests.fixtures.factories import create_sequence
from tests.fixtures.services import Services, create_database, drop_database
from tests.fixtures.tenants import Tenant

BEFORE = "0014_journal_outlives_contacts"
ENCRYPTING = "0015_encrypt_signing_secrets"


async def _stored(factory: async_sessionmaker[AsyncSession], sql: str, row_id: str) -> str:
    async with factory() as session:
        value = await session.scalar(text(sql), {"id": uuid.UUID(row_id)})
    assert isinstance(value, str)
    return value


async def test_webhook_and_sequence_secrets_are_stored_encrypted(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    endpoint = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
        headers=tenant.headers,
    )
    assert endpoint.status_code == 201
    secret = endpoint.json()["secret"]
    stored = await _stored(
        session_factory,
        "SELECT secret FROM webhook_endpoints WHERE id = :id",
        endpoint.json()["id"],
    )
    assert secret.startswith("whsec_")
    assert secret not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
    assert encryption.decrypt(stored) == secret

    rotated = await client.post(
        f"/v1/webhook-endpoints/{endpoint.json()['id']}/rotate-secret", headers=tenant.headers
    )
    assert rotated.status_code == 200
    row_sql = "SELECT secret || ' ' || previous_secret FROM webhook_endpoints WHERE id = :id"
    both = await _stored(session_factory, row_sql, endpoint.json()["id"])
    new_stored, previous_stored = both.split(" ")
    assert encryption.decrypt(new_stored) == rotated.json()["secret"]
    assert encryption.decrypt(previous_stored) == secret
    assert secret not in both

    sequence = await create_sequence(client, tenant, {"steps": [{"key": "d", "type": "exit"}]})
    stored_signing = await _stored(
        session_factory, "SELECT signing_secret FROM sequences WHERE id = :id", sequence["id"]
    )
    assert sequence["signing_secret"] not in stored_signing
    assert encryption.decrypt(stored_signing) == sequence["signing_secret"]


def test_two_keys_rotate() -> None:
    old, new = encryption.generate_key(), encryption.generate_key()
    token = Keyring([old]).encrypt("whsec_abc")
    both = Keyring([new, old])
    assert both.decrypt(token) == "whsec_abc"  # old secrets still read
    rotated = both.rotate(token)
    assert Keyring([new]).decrypt(rotated) == "whsec_abc"  # now readable without the old key
    with pytest.raises(SecretsUnreadable, match="HERALD_SECURITY__ENCRYPTION_KEYS"):
        Keyring([new]).decrypt(token)


def test_the_first_key_encrypts() -> None:
    old, new = encryption.generate_key(), encryption.generate_key()
    token = Keyring([new, old]).encrypt("whsec_abc")
    assert Keyring([new]).decrypt(token) == "whsec_abc"
    with pytest.raises(SecretsUnreadable):
        Keyring([old]).decrypt(token)


@pytest.fixture
def restore_keyring(settings: Settings) -> Iterator[None]:
    yield
    encryption.configure(settings)


async def test_reencrypt_command_moves_every_secret_to_the_new_key(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    restore_keyring: None,
) -> None:
    endpoint = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
        headers=tenant.headers,
    )
    secret = endpoint.json()["secret"]
    assert settings.security.encryption_keys is not None
    old = settings.security.encryption_keys.get_secret_value()
    new = encryption.generate_key()

    def use(keys: str) -> None:
        security = SecuritySettings(encryption_keys=SecretStr(keys))
        encryption.configure(settings.model_copy(update={"security": security}))

    use(f"{new},{old}")
    counts = await reencrypt_secrets(settings.require_database_url())
    assert counts["webhook_endpoints.secret"] >= 1
    assert set(counts) == {
        "webhook_endpoints.secret",
        "webhook_endpoints.previous_secret",
        "sequences.signing_secret",
    }
    use(new)  # the old key is gone: every secret still reads
    async with session_factory() as session:
        loaded = await session.get(WebhookEndpoint, uuid.UUID(endpoint.json()["id"]))
        assert loaded is not None
        assert loaded.secret == secret
    stored = await _stored(
        session_factory,
        "SELECT secret FROM webhook_endpoints WHERE id = :id",
        endpoint.json()["id"],
    )
    with pytest.raises(SecretsUnreadable):
        Keyring([old]).decrypt(stored)


def test_production_refuses_to_start_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_SECURITY__ENCRYPTION_KEYS")
    monkeypatch.setenv("HERALD_ENVIRONMENT", "production")
    monkeypatch.setenv("HERALD_CHANNELS__TRACKING_SECRET", "a-random-production-value")
    with pytest.raises(ValidationError, match="HERALD_SECURITY__ENCRYPTION_KEYS must be set"):
        Settings()
    monkeypatch.setenv("HERALD_SECURITY__ENCRYPTION_KEYS", encryption.generate_key())
    assert Settings().environment == "production"


def test_a_malformed_key_is_refused_with_its_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_SECURITY__ENCRYPTION_KEYS", f"{encryption.generate_key()},nope")
    with pytest.raises(ValidationError, match="key 2 is not a Fernet key"):
        Settings()


def test_development_keeps_a_generated_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_SECURITY__ENCRYPTION_KEYS")
    settings = Settings.model_validate({"environment": "development", "data_dir": str(tmp_path)})
    first = encryption.keys_from_settings(settings)
    key_file = tmp_path / "encryption-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert encryption.keys_from_settings(settings) == first  # the same key on every start
    assert Keyring(first).decrypt(Keyring(first).encrypt("s")) == "s"


# -- The migration ------------------------------------------------------------------------


@pytest.fixture
def migration_database(services: Services) -> Iterator[str]:
    name = create_database(services, "herald_secrets_migration")
    yield services.database_url(name)
    drop_database(services, name)


async def _sql(url: str, *statements: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            rows: list[tuple[object, ...]] = []
            for statement in statements:
                result = await connection.execute(text(statement))
                if result.returns_rows:
                    rows = [tuple(row) for row in result.all()]
            return rows
    finally:
        await engine.dispose()


SELECT_SECRETS = (
    "SELECT e.secret, e.previous_secret, s.signing_secret FROM webhook_endpoints e, sequences s"
)


def test_migration_encrypts_existing_rows_and_downgrade_decrypts(migration_database: str) -> None:
    url = migration_database
    upgrade(url, BEFORE)
    workspace = uuid.uuid4()
    asyncio.run(
        _sql(
            url,
            f"INSERT INTO workspaces (id, name, created_at, updated_at) "
            f"VALUES ('{workspace}', 'Acme', now(), now())",
            "INSERT INTO webhook_endpoints (id, workspace_id, url, event_types, secret, "
            "previous_secret, created_at, updated_at) VALUES "
            f"('{uuid.uuid4()}', '{workspace}', 'https://x.example', "
            "'{*}', 'whsec_current', 'whsec_previous', now(), now())",
            "INSERT INTO sequences (id, workspace_id, name, version, definition, "
            "signing_secret, created_at, updated_at) VALUES "
            f"('{uuid.uuid4()}', '{workspace}', 'S', 1, '{{}}', 'whsec_sequence', now(), now())",
        )
    )
    upgrade(url, ENCRYPTING)
    [(secret, previous, signing)] = asyncio.run(_sql(url, SELECT_SECRETS))
    assert isinstance(secret, str)
    assert isinstance(previous, str)
    assert isinstance(signing, str)
    assert "whsec" not in secret + previous + signing
    assert [encryption.decrypt(v) for v in (secret, previous, signing)] == [
        "whsec_current",
        "whsec_previous",
        "whsec_sequence",
    ]
    downgrade(url, BEFORE)
    assert asyncio.run(_sql(url, SELECT_SECRETS)) == [
        ("whsec_current", "whsec_previous", "whsec_sequence")
    ]


# -- The CLI ------------------------------------------------------------------------------

runner = CliRunner()


def test_generate_key_prints_a_usable_key() -> None:
    result = runner.invoke(cli, ["secrets", "generate-key"])
    assert result.exit_code == 0
    key = result.output.strip()
    assert Keyring(encryption.parse_keys(key)).decrypt(Keyring([key]).encrypt("s")) == "s"


@pytest.mark.usefixtures("app")
async def test_reencrypt_command_reports_each_column(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
        headers=tenant.headers,
    )
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = await asyncio.to_thread(runner.invoke, cli, ["secrets", "reencrypt"])
    assert result.exit_code == 0, result.output
    assert "webhook_endpoints.secret: 1 re-encrypted" in result.output
    assert "sequences.signing_secret: 0 re-encrypted" in result.output


@pytest.mark.usefixtures("app")
def test_cli_cannot_revoke_the_last_owner_key(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    created = runner.invoke(
        cli, ["workspaces", "create", "--name", "Solo", "--owner-email", "solo@solo.example"]
    )
    workspace_id = created.output.split()[1]
    listed = runner.invoke(cli, ["keys", "list", "--workspace", workspace_id])
    key_id = listed.output.split()[0]
    revoked = runner.invoke(cli, ["keys", "revoke", key_id, "--workspace", workspace_id])
    assert revoked.exit_code == 1
    assert "last owner's last `admin` key" in revoked.output
