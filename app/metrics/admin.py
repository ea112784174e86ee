"""`herald metrics recount`: the recount on its own engine, at one consistent snapshot."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import create_engine
from app.metrics import service
from app.metrics.repository import FOLD_LOCK, Scope


async def recount_command(
    database_url: str, scope: Scope, *, fix: bool
) -> list[service.Difference]:
    """Compare (and with `fix`, rewrite) under REPEATABLE READ, so stored and recounted figures
    come from the same snapshot. `fix` first takes the fold lock on a separate connection:
    the fold skips its ticks until the rewrite commits."""
    engine = create_engine(database_url, pool_size=2)
    try:
        async with engine.connect() as lock:
            if fix:
                await lock.execute(select(func.pg_advisory_lock(FOLD_LOCK)))
            try:
                async with engine.connect() as raw:
                    connection = await raw.execution_options(isolation_level="REPEATABLE READ")
                    async with AsyncSession(bind=connection) as session, session.begin():
                        return await service.recount(session, scope, fix=fix)
            finally:
                if fix:
                    await lock.execute(select(func.pg_advisory_unlock(FOLD_LOCK)))
    finally:
        await engine.dispose()
