"""arq tasks of the channels domain (registered in app/worker/settings.py).

`deliver_due` runs every 5 seconds: Postgres holds every pending message, arq only wakes
workers, so lost jobs, retries, rate-limited messages and sends whose worker died are all
picked up from the table."""

from __future__ import annotations

import uuid
from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.worker import func

from app.channels import outbox
from app.channels.delivery import count_statuses, deliver
from app.core.clock import utcnow
from app.core.jobs import enqueue
from app.core.tasks import counted, task_session
from app.core.worker_context import WorkerContext

BATCH = 200  # messages per `deliver_batch` job
SCAN_LIMIT = 20_000  # messages re-driven per scan; the next scan takes the rest


@counted
async def deliver_batch(ctx: dict[str, Any], message_ids: list[str]) -> dict[str, int]:
    report = await deliver(cast(WorkerContext, ctx), [uuid.UUID(i) for i in message_ids])
    return {
        "sent": report.sent,
        "retried": report.retried,
        "failed": report.failed,
        "unknown": report.unknown,
        "deferred": report.deferred,
    }


@counted
async def deliver_due(ctx: dict[str, Any]) -> dict[str, int]:
    """Expire stale leases (SMTP -> `unknown`, others -> queued), then hand due queued
    messages to `deliver_batch` jobs (enqueued after the commit)."""
    typed = cast(WorkerContext, ctx)
    now = utcnow()
    async with task_session(typed) as session:
        expired = await outbox.expire_leases(
            session, now, SCAN_LIMIT, typed["settings"].channels.max_attempts
        )
        due = await outbox.due_ids(session, now, SCAN_LIMIT)
        for start in range(0, len(due), BATCH):
            chunk = [str(i) for i in due[start : start + BATCH]]
            # Same chunk again while its job is queued: one job (the lease makes any
            # duplicate harmless anyway).
            enqueue(session, "deliver_batch", chunk, job_key=(chunk[0], chunk[-1], len(chunk)))
    finals: dict[str, int] = {}
    for _, status, channel in expired:
        if status in ("unknown", "failed"):
            finals[f"{channel}|{status}"] = finals.get(f"{channel}|{status}", 0) + 1
    await count_statuses(typed["redis"], finals)
    return {
        "requeued": sum(1 for _, status, _ in expired if status == "queued"),
        "unknown": sum(1 for _, status, _ in expired if status == "unknown"),
        "failed": sum(1 for _, status, _ in expired if status == "failed"),
        "due": len(due),
    }


TASKS: list[Any] = [
    # No kept result: a chunk with the same ids may need to run again within the hour.
    func(deliver_batch, name="deliver_batch", keep_result=0),
    func(deliver_due, name="deliver_due", keep_result=0),
]
CRON_JOBS: list[CronJob] = [
    cron(deliver_due, second=set(range(0, 60, 5)), unique=True, run_at_startup=True),
]
