from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import (
    LOOPBACK_NETWORKS,
    LoggingSettings,
    SecuritySettings,
    Settings,
    WebhookSettings,
)
from app.core.clock import clock
from app.core.state import AppState
from app.main import create_app
from app.migrate import upgrade
from app.models import Base
from tests.fixtures.clients import client_for
from tests.fixtures.services import Services, create_database, drop_database, start_services
from tests.fixtures.tenants import Tenant, make_tenant

# Stored signing secrets are encrypted (app/core/encryption.py): the tests' key, for the app,
# the worker, and the migrations (which read the environment).
TEST_ENCRYPTION_KEY = "RB3oakksmRDI4dXZMiheDr76P5ntUAWBj-M6BBITjYs="
os.environ["HERALD_SECURITY__ENCRYPTION_KEYS"] = TEST_ENCRYPTION_KEY


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    yield from start_services(tmp_path_factory.mktemp("services"))


@pytest.fixture(scope="session")
def database_url(services: Services) -> Iterator[str]:
    name = create_database(services, "herald_test")
    url = services.database_url(name)
    upgrade(url)
    yield url
    drop_database(services, name)


def make_settings(database_url: str, redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "logging": LoggingSettings(level="WARNING", json_output=True),
        # Receivers in tests are local servers: the SSRF guard lets loopback through here
        # (its own tests turn it back on).
        "webhooks": WebhookSettings(allowed_networks=LOOPBACK_NETWORKS),
        "security": SecuritySettings(encryption_keys=SecretStr(TEST_ENCRYPTION_KEY)),
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
def settings(database_url: str, services: Services) -> Settings:
    return make_settings(database_url, services.redis_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def state(app: FastAPI) -> AppState:
    herald: AppState = app.state.herald
    return herald


@pytest.fixture(scope="session")
def session_factory(state: AppState) -> async_sessionmaker[AsyncSession]:
    return state.session_factory


@pytest.fixture(scope="session")
def redis(state: AppState) -> Redis:
    return state.redis


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        yield http


@pytest.fixture(autouse=True)
async def _isolate(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test starts from empty tables, an empty Redis and the real clock."""
    uses_app = "app" in request.fixturenames
    state: AppState | None = request.getfixturevalue("state") if uses_app else None
    yield
    clock.reset()
    if state is None:
        return
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with state.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await state.redis.flushdb()


@pytest.fixture
async def tenant(session_factory: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(session_factory, "Acme")


@pytest.fixture
async def other_tenant(session_factory: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(session_factory, "Globex")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """No test skips itself silently: a skip must say why (`-ra` prints it, naming the
    missing machine capability); a skip with an empty reason is reported as a failure."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    # pytest words an empty reason "Skipped" (or "Skipped: " from `pytest.skip("")`).
    if reason.strip() in ("", "Skipped", "Skipped:"):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} skipped without a reason (tests/test_test_layout.py)"
