"""arq tasks of the channels domain (registered in app/worker/settings.py).

`deliver_due` runs every 5 seconds: Postgres holds every pending message, arq only wakes
workers, so lost jobs, retries and sends whose worker died are all picked up from the table.
Rate-limited messages never wait for it: the drain that holds a slot sends them."""

from __future__ import annotations

from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.worker import func

from app.channels import delivery_repository
from app.channels.delivery import DRAIN_SECONDS, count_statuses, drain
from app.channels.settled import announce_settled
from app.core.clock import utcnow
from app.core.jobs import enqueue
from app.core.tasks import counted, task_session
from app.core.worker_context import WorkerContext

SCAN_LIMIT = 20_000  # stale leases settled per scan; the next scan takes the rest


@counted
async def deliver_channel(ctx: dict[str, Any], channel: str) -> dict[str, int]:
    """Drain one channel's due messages (oldest first, within the rate limit)."""
    report = await drain(cast(WorkerContext, ctx), channel)
    return {
        "sent": report.sent,
        "retried": report.retried,
        "failed": report.failed,
        "unknown": report.unknown,
    }


@counted
async def deliver_due(ctx: dict[str, Any]) -> dict[str, int]:
    """Settle stale leases (SMTP -> `unknown`, others -> queued; the enrollments waiting on
    the settled ones go on), then start a drain for every channel with due messages
    (enqueued after the commit)."""
    typed = cast(WorkerContext, ctx)
    now = utcnow()
    async with task_session(typed) as session:
        expired = await delivery_repository.expire_leases(
            session, now, SCAN_LIMIT, typed["settings"].channels.max_attempts
        )
        await announce_settled(session, [row for row in expired if row.status != "queued"], now)
        due = await delivery_repository.due_channels(session, now)
        for channel in due:
            # One queued job per channel (a running drain absorbs any other).
            enqueue(session, "deliver_channel", channel, job_key=(channel,))
    finals: dict[str, int] = {}
    for row in expired:
        if row.status in ("unknown", "failed"):
            key = f"{row.channel}|{row.status}"
            finals[key] = finals.get(key, 0) + 1
    await count_statuses(typed["redis"], finals)
    return {
        "requeued": sum(1 for row in expired if row.status == "queued"),
        "unknown": sum(1 for row in expired if row.status == "unknown"),
        "failed": sum(1 for row in expired if row.status == "failed"),
        "due_channels": len(due),
    }


TASKS: list[Any] = [
    # No kept result: the same channel's job may be needed again at once.
    func(deliver_channel, name="deliver_channel", keep_result=0, timeout=DRAIN_SECONDS + 60),
    func(deliver_due, name="deliver_due", keep_result=0),
]
CRON_JOBS: list[CronJob] = [
    cron(deliver_due, second=set(range(0, 60, 5)), unique=True, run_at_startup=True),
]
