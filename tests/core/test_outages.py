"""A dependency outage is a 503 with `Retry-After`, never a 500; a bug stays a 500.

The live version (a real `herald serve` while PostgreSQL restarts and Redis stops) is
tests/test_outages_live.py; these are the fast, in-process cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.exceptions
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from app.config import Settings
from app.core.db import create_engine
from app.core.outages import is_outage
from app.embedded import EmbeddedRedis, free_port
from app.main import create_app
from tests.fixtures.clients import client_for
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import Tenant


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def _wrapped(orig: BaseException, *, invalidated: bool = False) -> BaseException:
    try:
        try:
            raise orig
        except BaseException as inner:
            raise sa_exc.DBAPIError(
                "SELECT 1", {}, inner, connection_invalidated=invalidated
            ) from inner
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "reset by peer"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379."),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_connection_failures_are_outages(exc: BaseException) -> None:
    assert is_outage(_raised(exc))
    assert is_outage(_wrapped(exc))  # as SQLAlchemy hands them over


def test_bugs_are_not_outages() -> None:
    assert not is_outage(_raised(ValueError("bad")))
    assert not is_outage(_raised(KeyError("x")))
    busy = asyncpg.exceptions.InterfaceError("another operation is in progress")
    assert not is_outage(_raised(busy))  # concurrent use of one connection: a bug
    assert not is_outage(_wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")))
    # An OS error of our own (a file, a timer) is not an outage; the same from a driver is.
    assert not is_outage(_raised(FileNotFoundError(2, "No such file")))
    assert not is_outage(_raised(TimeoutError()))
    assert is_outage(_wrapped(ValueError("x"), invalidated=True))


async def test_a_driver_os_error_is_an_outage() -> None:
    """A PostgreSQL socket file that is gone (server stopped) is a plain FileNotFoundError,
    raised from asyncpg's frames."""
    engine = create_engine(
        f"postgresql+asyncpg://herald@/herald?host={Path('/nonexistent-socket-dir')}", 1
    )
    try:
        with pytest.raises(FileNotFoundError) as raised:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        assert is_outage(raised.value)
    finally:
        await engine.dispose()


@pytest.fixture
async def app_without_postgres(settings: Settings) -> AsyncIterator[FastAPI]:
    """The API with its PostgreSQL gone (a port nothing listens on)."""
    url = f"postgresql+asyncpg://herald:herald@127.0.0.1:{free_port()}/herald"
    app = create_app(settings.model_copy(update={"database_url": SecretStr(url)}))
    async with app.router.lifespan_context(app):
        yield app


async def test_requests_while_postgres_is_down_are_503(
    app_without_postgres: FastAPI, tenant: Tenant
) -> None:
    """Observed: 500 (`ConnectionRefusedError` unhandled) for every request of a stop."""
    async with client_for(app_without_postgres) as http:
        for method, path in [("GET", "/v1/contacts"), ("POST", "/v1/contacts")]:
            body = {"email": "a@example.com"} if method == "POST" else None
            response = await http.request(method, path, json=body, headers=tenant.headers)
            problem = assert_problem(response, 503, "service-unavailable")
            assert "retry" in str(problem["detail"])
            assert response.headers["retry-after"] == "1"
        ready = await http.get("/readyz")
    problem = assert_problem(ready, 503, "service-unavailable")
    assert problem["checks"] == {"postgres": "down", "redis": "ok"}
    assert ready.headers["retry-after"] == "1"


@pytest.fixture
async def app_with_stopped_redis(settings: Settings, tmp_path: Path) -> AsyncIterator[FastAPI]:
    redis_server = EmbeddedRedis(tmp_path / "redis")
    url = redis_server.start()
    app = create_app(settings.model_copy(update={"redis_url": SecretStr(url)}))
    try:
        async with app.router.lifespan_context(app):
            redis_server.stop()
            yield app
    finally:
        redis_server.stop()


async def test_requests_while_redis_is_down_are_503(
    app_with_stopped_redis: FastAPI, tenant: Tenant
) -> None:
    async with client_for(app_with_stopped_redis) as http:
        response = await http.get("/v1/contacts", headers=tenant.headers)
        assert_problem(response, 503, "service-unavailable")
        assert response.headers["retry-after"] == "1"
        ready = await http.get("/readyz")
    assert_problem(ready, 503, "service-unavailable")
    assert ready.headers["retry-after"] == "1"


async def test_a_bug_is_still_a_500(client: httpx.AsyncClient, app: FastAPI) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.router.add_api_route("/test-only/broken", broken)
    try:
        response = await client.get("/test-only/broken")
    finally:
        app.router.routes.pop()
    assert_problem(response, 500, "internal-error")
