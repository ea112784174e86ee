"""Engine, sessions and the declarative base shared by every domain."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, MetaData, Uuid
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.clock import utcnow
from app.core.ids import new_id

if TYPE_CHECKING:
    from app.worker.queue import JobQueue

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


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # JIT compilation pays off for long analytical scans, not for Herald's statements:
        # segment counts spent ~0.6 s compiling plans whose estimated cost crossed the JIT
        # threshold (docs/indexes.md). Off for every Herald connection.
        connect_args={
            "server_settings": {"application_name": "herald", "timezone": "UTC", "jit": "off"}
        },
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


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
            if queue is not None:
                queue.discard(session)
            raise
        if queue is not None:
            await queue.flush(session)
