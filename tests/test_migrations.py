"""Migrations are the schema: one head, up from empty, down to base, no drift."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrate import alembic_config, downgrade, upgrade
from app.models import Base
from tests.fixtures.services import Services, create_database, drop_database


@pytest.fixture
def empty_database(services: Services) -> Iterator[str]:
    name = create_database(services, "herald_migrations")
    yield services.database_url(name)
    drop_database(services, name)


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _inspect(url: str) -> tuple[list[Any], set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff)
            rows = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return diff, {row[0] for row in rows}
    finally:
        await engine.dispose()


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://unused/db"))
    assert len(script.get_heads()) == 1


def test_upgrade_from_empty_has_no_drift_and_downgrades_to_base(empty_database: str) -> None:
    upgrade(empty_database)
    diff, tables = asyncio.run(_inspect(empty_database))
    assert diff == []
    assert {table.name for table in Base.metadata.sorted_tables} <= tables

    downgrade(empty_database, "base")
    _, tables = asyncio.run(_inspect(empty_database))
    assert tables == {"alembic_version"}

    upgrade(empty_database)  # and back up again: downgrades leave nothing behind
    diff, _ = asyncio.run(_inspect(empty_database))
    assert diff == []
