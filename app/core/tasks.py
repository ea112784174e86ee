"""Task plumbing: a task session (one transaction, jobs flushed after commit) and outcome
counting for /metrics."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar, cast

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import transaction
from app.core.observability import record_job
from app.core.outages import is_outage
from app.core.worker_context import WorkerContext

P = ParamSpec("P")
R = TypeVar("R")
log = structlog.get_logger("herald.worker")


@asynccontextmanager
async def task_session(ctx: WorkerContext) -> AsyncIterator[AsyncSession]:
    async with transaction(ctx["session_factory"], ctx["queue"]) as session:
        yield session


def counted(
    func: Callable[..., Awaitable[R]],
) -> Callable[..., Coroutine[Any, Any, R]]:
    """Record each run's outcome in Redis so any API process can report it."""

    @functools.wraps(func)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> R:
        typed = cast(WorkerContext, ctx)
        try:
            result = await func(ctx, *args, **kwargs)
        except Exception as exc:
            if is_outage(exc):
                raise  # retried, and logged once per outage (app/worker/resilience.py)
            await record_job(typed["redis"], func.__name__, "failed")
            log.exception("job_failed", function=func.__name__)
            raise
        await record_job(typed["redis"], func.__name__, "succeeded")
        return result

    return wrapper


async def in_batches(
    ctx: WorkerContext,
    names: tuple[str, ...],
    limit: int,
    batch: Callable[[AsyncSession], Awaitable[tuple[int, ...]]],
) -> dict[str, int]:
    """Run `batch` in one transaction after another (purges: short transactions however
    much is due) until every count it returns is under `limit`; the totals by name."""
    totals = dict.fromkeys(names, 0)
    while True:
        async with task_session(ctx) as session:
            counts = await batch(session)
        for name, count in zip(names, counts, strict=True):
            totals[name] += count
        if all(count < limit for count in counts):
            return totals
