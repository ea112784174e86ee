"""arq tasks of the engine (registered in app/worker/settings.py).

`run_enrollments` keeps no result: its ids are unique per lease, and results of thousands
of small batches would only fill Redis. The scan runs every second; it is `unique`, so with
several workers one of them runs each tick.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.worker import func

from app.channels.delivery import deliver
from app.core.clock import utcnow
from app.core.observability import record_lateness
from app.core.tasks import counted, task_session
from app.core.worker_context import WorkerContext
from app.sequences.engine.claims import advance_batch
from app.sequences.engine.scheduler import lease_due


@counted
async def run_enrollments(ctx: dict[str, Any], workspace_id: str, ids: list[str]) -> int:
    """Advance one batch of due enrollments, then deliver the messages it created."""
    typed = cast(WorkerContext, ctx)
    now = utcnow()
    async with task_session(typed) as session:
        result = await advance_batch(
            session, typed["settings"], uuid.UUID(workspace_id), [uuid.UUID(i) for i in ids], now
        )
    await record_lateness(typed["redis"], result.lateness)
    if result.message_ids:
        await deliver(typed, result.message_ids)
    return result.advanced


@counted
async def engine_scan(ctx: dict[str, Any]) -> int:
    """Lease due enrollments into batch jobs, unless the queue is already deep (then the
    work waits in Postgres, where it is safe, instead of piling up leases in Redis)."""
    typed = cast(WorkerContext, ctx)
    settings = typed["settings"]
    if await typed["redis"].zcard(settings.worker.queue_name) >= settings.engine.max_queued_jobs:
        return 0
    lookahead = timedelta(milliseconds=settings.engine.lookahead_ms)
    async with task_session(typed) as session:
        batches = await lease_due(session, settings, utcnow(), lookahead)
    return sum(len(batch.ids) for batch in batches)


TASKS: list[Any] = [
    # A short timeout: a killed worker's jobs are re-run by arq (and stop counting against
    # the scan's back-pressure) after timeout + 10 s instead of the default 5 minutes.
    func(run_enrollments, name="run_enrollments", keep_result=0, timeout=120),
    func(engine_scan, name="engine_scan", keep_result=0),
]
CRON_JOBS: list[CronJob] = [
    cron(engine_scan, second=set(range(60)), run_at_startup=True, unique=True, keep_result=0),
]
