"""Pooled connections that die: an idle one is pinged and replaced before use; one that dies
under a request costs that request a 503 (retryable), and the next request works."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import create_engine
from app.core.state import AppState
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import Tenant

TERMINATE_OTHERS = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = 'herald'"
    " AND pid <> pg_backend_pid()"
)


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_an_idle_connection_that_died_is_replaced_before_use(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, idle_ping_seconds=0)
    killer = create_engine(database_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        async with killer.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        # Without the ping this checkout would hand out the dead socket and the query fail.
        second = await _backend_pid(engine)
        assert second != first
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_a_connection_used_recently_is_not_pinged(database_url: str) -> None:
    """Inside the idle window no ping runs (that is the saving): a break is found by the
    statement itself, which invalidates the connection."""
    engine = create_engine(database_url, pool_size=1, idle_ping_seconds=3600)
    killer = create_engine(database_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        async with killer.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        with pytest.raises(DBAPIError) as raised:
            await _backend_pid(engine)
        assert raised.value.connection_invalidated
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_a_connection_lost_under_a_request_answers_503_then_recovers(
    client: httpx.AsyncClient, state: AppState, tenant: Tenant
) -> None:
    assert (await client.get("/v1/workspace", headers=tenant.headers)).status_code == 200
    async with state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    killer = create_engine(str(state.engine.url.render_as_string(hide_password=False)), 1)
    try:
        async with killer.connect() as connection:
            await connection.execute(text("SET application_name = 'killer'"))
            killed = (await connection.execute(TERMINATE_OTHERS)).scalar_one()
        assert killed >= 1
    finally:
        await killer.dispose()
    # Pooled connections were used a moment ago: not pinged, so the request finds the break.
    response = await client.get("/v1/workspace", headers=tenant.headers)
    problem = assert_problem(response, 503, "service-unavailable")
    assert "retry" in str(problem["detail"])
    assert response.headers["retry-after"] == "1"
    # The pool was invalidated: the retry gets a fresh connection.
    assert (await client.get("/v1/workspace", headers=tenant.headers)).status_code == 200
