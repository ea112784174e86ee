"""arq worker configuration, built from Settings."""

from __future__ import annotations

from typing import Any, cast

import httpx
from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker

import app.models  # noqa: F401 - every table mapped: ORM inserts resolve all foreign keys
from app.campaigns import tasks as campaigns_tasks
from app.channels import tasks as channels_tasks
from app.config import Settings, get_settings
from app.contacts import tasks as contacts_tasks
from app.core import encryption
from app.core.db import create_engine, create_session_factory
from app.core.jobs import JobQueue
from app.core.logging import configure_logging
from app.core.worker_context import WorkerContext
from app.events import tasks as events_tasks
from app.experiments import tasks as experiments_tasks
from app.metrics import tasks as metrics_tasks
from app.notifications import tasks as notifications_tasks
from app.segments import tasks as segments_tasks
from app.sequences import tasks as sequences_tasks
from app.webhooks import tasks as webhooks_tasks
from app.wiring import wire
from app.worker.housekeeping import purge_idempotency_keys
from app.worker.resilience import (
    OutageLog,
    ResilientWorker,
    resilient_cron_jobs,
    resilient_functions,
)

# Workers publish and subscribe like the API does: the same subscriptions in every process.
wire()

FUNCTIONS: list[Any] = [
    purge_idempotency_keys,
    *contacts_tasks.TASKS,
    *events_tasks.TASKS,
    *segments_tasks.TASKS,
    *channels_tasks.TASKS,
    *sequences_tasks.TASKS,
    *campaigns_tasks.TASKS,
    *webhooks_tasks.TASKS,
    *metrics_tasks.TASKS,
    *experiments_tasks.TASKS,
    *notifications_tasks.TASKS,
]
CRON_JOBS = [
    cron(purge_idempotency_keys, minute={7}, run_at_startup=False, unique=True),
    *contacts_tasks.CRON_JOBS,
    *events_tasks.CRON_JOBS,
    *segments_tasks.CRON_JOBS,
    *channels_tasks.CRON_JOBS,
    *sequences_tasks.CRON_JOBS,
    *campaigns_tasks.CRON_JOBS,
    *webhooks_tasks.CRON_JOBS,
    *metrics_tasks.CRON_JOBS,
    *experiments_tasks.CRON_JOBS,
    *notifications_tasks.CRON_JOBS,
]


def _startup(settings: Settings) -> Any:
    async def startup(ctx: dict[str, Any]) -> None:
        engine = create_engine(settings.require_database_url(), settings.db_pool_size)
        ctx["settings"] = settings
        ctx["engine"] = engine
        ctx["session_factory"] = create_session_factory(engine)
        ctx["queue"] = JobQueue(ctx["redis"], settings.worker.queue_name)
        ctx["http"] = httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)

    return startup


async def _shutdown(ctx: dict[str, Any]) -> None:
    typed = cast(WorkerContext, ctx)
    if "http" in ctx:
        await typed["http"].aclose()
    if "engine" in ctx:
        await typed["engine"].dispose()


def build_worker(settings: Settings | None = None, **overrides: Any) -> Worker:
    settings = settings or get_settings()
    configure_logging(settings.logging.level, settings.logging.json_output)
    encryption.configure(settings)
    options: dict[str, Any] = {
        "functions": FUNCTIONS,
        "cron_jobs": CRON_JOBS,
        "redis_settings": RedisSettings.from_dsn(settings.require_redis_url()),
        "queue_name": settings.worker.queue_name,
        "on_startup": _startup(settings),
        "on_shutdown": _shutdown,
        "max_jobs": settings.worker.max_jobs,
        "poll_delay": 0.1,  # a deferred engine batch starts within 100 ms of its time
        "job_timeout": settings.worker.job_timeout_seconds,
        # Each outage back-off is a try (app/worker/resilience.py): allow enough for a long one.
        "max_tries": settings.worker.max_tries,
        "handle_signals": True,
        # SIGTERM/SIGINT: take no new job, let running ones finish within the grace period
        # (their outcomes recorded as usual), then cancel the rest (arq re-queues them) and
        # exit 0. Without it arq cancels running jobs at once.
        "job_completion_wait": settings.worker.shutdown_grace_seconds,
    }
    options.update(overrides)
    outages, cap = OutageLog(), settings.worker.outage_retry_max_seconds
    options["functions"] = resilient_functions(options["functions"], outages, cap)
    options["cron_jobs"] = resilient_cron_jobs(options["cron_jobs"] or [], outages, cap)
    return ResilientWorker(**options, outages=outages, outage_cap_seconds=cap)
