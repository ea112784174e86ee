"""Engine, sessions and the declarative base shared by every domain."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, MetaData, Uuid, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.core.clock import utcnow
from app.core.ids import new_id

if TYPE_CHECKING:
    from app.core.jobs import JobQueue

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), uuid.UUID: Uuid()}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# A pooled connection idle for longer than this is pinged before use (a server restart or a
# firewall dropping idle sockets is found there, not by the request). SQLAlchemy's own
# `pool_pre_ping` pings on every checkout: three round trips on asyncpg (BEGIN, `;`,
# ROLLBACK), about a fifth of a cached authenticated read (docs/benchmarks.md, Metrics).
IDLE_PING_SECONDS = 10.0


def create_engine(
    url: str, pool_size: int = 10, idle_ping_seconds: float = IDLE_PING_SECONDS
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # JIT compilation pays off for long analytical scans, not for Herald's statements:
        # segment counts spent ~0.6 s compiling plans whose estimated cost crossed the JIT
        # threshold (docs/indexes.md). Off for every Herald connection.
        connect_args={
            "server_settings": {"application_name": "herald", "timezone": "UTC", "jit": "off"}
        },
    )
    _ping_when_idle(engine, idle_ping_seconds)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping connections that sat idle in the pool; a failed ping makes the pool replace the
    connection (DisconnectionError). A connection that dies while in use is still found by
    the statement: SQLAlchemy then invalidates the whole pool, and the API answers that one
    request with a 503 (app/core/middleware.py)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("idle connection failed its ping") from exc


async def ping(engine: AsyncEngine) -> None:
    """One round trip to PostgreSQL on a pooled connection (readiness): raises when the
    database does not answer."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def rowcount(result: Any) -> int:
    """Rows an UPDATE / DELETE matched (the result types do not all declare `rowcount`)."""
    return int(getattr(result, "rowcount", 0) or 0)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


_AFTER_COMMIT_KEY = "herald_after_commit"


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[None]]) -> None:
    """Run `action` once the session's transaction has committed (never on rollback); the
    request's response waits for it."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(action)


@asynccontextmanager
async def transaction(
    factory: async_sessionmaker[AsyncSession], queue: JobQueue | None = None
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, then hand buffered jobs to the queue.

    Jobs enqueued during the transaction only reach Redis after the commit succeeds, so a
    worker never sees work whose rows are not yet visible, and a rollback enqueues nothing.
    """
    async with factory() as session:
        if queue is not None:
            queue.attach(session)
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            session.info.pop(_AFTER_COMMIT_KEY, None)
            if queue is not None:
                queue.discard(session)
            raise
        if queue is not None:
            await queue.flush(session)
        for action in session.info.pop(_AFTER_COMMIT_KEY, []):
            await action()


class StatementTimeout(Exception):
    """A statement inside `statement_timeout(...)` ran past its bound and was cancelled."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"a statement ran longer than {seconds:g} s")
        self.seconds = seconds


_SET_TIMEOUT = text("SELECT set_config('statement_timeout', :value, true)")


@asynccontextmanager
async def statement_timeout(session: AsyncSession, seconds: float) -> AsyncIterator[None]:
    """Bound every statement of the block to `seconds` (PostgreSQL's `statement_timeout`,
    transaction-local, inside a savepoint). A statement running longer, or waiting longer
    for a lock, is cancelled by the server: the savepoint is rolled back, so the caller's
    transaction stays usable, and StatementTimeout is raised. The previous bound is back
    after the block either way."""
    previous = (await session.execute(text("SHOW statement_timeout"))).scalar_one()
    try:
        async with session.begin_nested():
            await session.execute(_SET_TIMEOUT, {"value": f"{max(1, round(seconds * 1000))}ms"})
            yield
            await session.execute(_SET_TIMEOUT, {"value": previous})
    except DBAPIError as exc:
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if code == "57014":  # query_canceled
            raise StatementTimeout(seconds) from exc
        raise
