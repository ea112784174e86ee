"""The typed context every task receives (arq passes a dict; this names its keys)."""

from __future__ import annotations

from typing import TypedDict

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.core.jobs import JobQueue


class WorkerContext(TypedDict):
    redis: ArqRedis
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    queue: JobQueue
    http: httpx.AsyncClient
