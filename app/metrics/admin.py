"""`herald metrics recount`: the recount on its own engine, at one consistent snapshot."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.db import create_engine
from app.metrics import service
from app.metrics.repository import Scope, holding_fold_lock


async def recount_command(
    database_url: str, scope: Scope, *, fix: bool
) -> list[service.Difference]:
    """Compare (and with `fix`, rewrite) under REPEATABLE READ, so stored and recounted figures
    come from the same snapshot. `fix` first takes the fold lock on a separate connection:
    the fold skips its ticks until the rewrite commits."""
    engine = create_engine(database_url, pool_size=2)
    try:
        async with (
            engine.connect() as lock,
            _fold_lock_if(fix, lock),
            engine.connect() as raw,
        ):
            connection = await raw.execution_options(isolation_level="REPEATABLE READ")
            async with AsyncSession(bind=connection) as session, session.begin():
                return await service.recount(session, scope, fix=fix)
    finally:
        await engine.dispose()


def _fold_lock_if(fix: bool, connection: AsyncConnection) -> AbstractAsyncContextManager[None]:
    return holding_fold_lock(connection) if fix else nullcontext()
