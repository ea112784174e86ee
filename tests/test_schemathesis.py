"""Property-based fuzzing of every operation in the app's own OpenAPI document.

Runs against a real uvicorn server: no 5xx, statuses and bodies as documented."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import delete

from app.admin import admin_session
from app.config import Settings
from app.main import create_app
from app.workspaces.models import Workspace
from tests.fixtures.live import live_server
from tests.fixtures.tenants import Tenant, make_tenant


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url


@pytest.fixture
def fuzz_tenant(database_url: str) -> Iterator[Tenant]:
    async def create() -> Tenant:
        from app.core.db import create_engine, create_session_factory

        engine = create_engine(database_url, pool_size=1)
        try:
            return await make_tenant(create_session_factory(engine), "Fuzz")
        finally:
            await engine.dispose()

    async def remove(workspace_id: Any) -> None:
        async with admin_session(database_url) as session:
            await session.execute(delete(Workspace).where(Workspace.id == workspace_id))

    tenant = asyncio.run(create())
    yield tenant
    asyncio.run(remove(tenant.workspace_id))


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """Import uploads are documented as strings; send them as the raw file."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else b""


# Built at import: create_app connects to nothing until its lifespan starts.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(database_url=None, redis_url=None)).openapi()
)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: Any, base_url: str, fuzz_tenant: Tenant) -> None:
    case.call_and_validate(
        base_url=base_url,
        headers=fuzz_tenant.headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
