"""arq tasks of the webhooks domain (registered in app/worker/settings.py).

`deliver_webhooks` works one endpoint's queue (job id `deliver_webhooks:<endpoint id>`, so
at most one per endpoint is queued); `webhooks_due` runs every second and wakes the jobs of
endpoints with due work (retries, expired leases, lost wake-ups): Postgres holds the state,
arq only wakes workers. `webhooks_purge` deletes what is past `webhooks.retention_days`.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.worker import func

from app.core.tasks import counted
from app.core.worker_context import WorkerContext
from app.outbox.emit import DELIVER_JOB
from app.webhooks.dispatch import service

# The time budget of a job, plus one attempt's longest timeout, plus slack.
DELIVER_TIMEOUT_SECONDS = int(service.TIME_BUDGET_SECONDS) + 60 + 30


@counted
async def deliver_webhooks(ctx: dict[str, Any], endpoint_id: str) -> dict[str, int]:
    return await service.deliver_endpoint(cast(WorkerContext, ctx), uuid.UUID(endpoint_id))


@counted
async def webhooks_due(ctx: dict[str, Any]) -> int:
    return await service.dispatch_due(cast(WorkerContext, ctx))


@counted
async def webhooks_purge(ctx: dict[str, Any]) -> dict[str, int]:
    return await service.purge_expired(cast(WorkerContext, ctx))


TASKS: list[Any] = [
    # No kept result: the endpoint's job id must be free again as soon as the job ends.
    func(deliver_webhooks, name=DELIVER_JOB, keep_result=0, timeout=DELIVER_TIMEOUT_SECONDS),
    func(webhooks_due, name="webhooks_due", keep_result=0),
    func(webhooks_purge, name="webhooks_purge", keep_result=0, timeout=3600),
]
CRON_JOBS: list[CronJob] = [
    cron(webhooks_due, second=set(range(60)), unique=True, run_at_startup=True),
    cron(webhooks_purge, hour={3}, minute={41}, unique=True, run_at_startup=False),
]
