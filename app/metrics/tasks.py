"""Metrics jobs: the fold (every second, unique) and the publication of changed campaigns."""

from __future__ import annotations

from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import MetricsSettings
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.tasks import counted
from app.core.worker_context import WorkerContext
from app.metrics import live, service


async def fold_and_publish(
    factory: async_sessionmaker[AsyncSession], redis: Redis, config: MetricsSettings
) -> service.FoldResult:
    """One fold in its own transaction, then the live counters of the campaigns it changed."""
    async with transaction(factory) as session:
        result = await service.fold(session, config, utcnow())
    if result.campaigns:
        await live.publish_changes(redis, factory, result.campaigns)
    return result


@counted
async def fold_metrics(ctx: dict[str, Any]) -> dict[str, int]:
    typed = cast(WorkerContext, ctx)
    config = service.metrics_settings(typed["settings"])
    result = await fold_and_publish(typed["session_factory"], typed["redis"], config)
    return {"events": result.events, "deltas": result.deltas, "campaigns": len(result.campaigns)}


TASKS: list[Any] = [fold_metrics]
CRON_JOBS: list[CronJob] = [
    cron(fold_metrics, second=set(range(60)), unique=True, run_at_startup=True),
]
