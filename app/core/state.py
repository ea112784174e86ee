"""What the API process holds for its lifetime (engine, Redis pool, HTTP client)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.config import Settings
from app.core.auth import PrincipalCache
from app.core.jobs import JobQueue


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    queue: JobQueue
    http: httpx.AsyncClient
    principals: PrincipalCache = field(default_factory=PrincipalCache)


def app_state(connection: HTTPConnection) -> AppState:
    state: AppState = connection.app.state.herald
    return state
