"""arq task of owner notifications (registered in app/worker/settings.py): a pass every
minute, `unique`, so one worker runs each tick. Its state is the audit log, so a tick missed
while workers were down is caught up by the next."""

from __future__ import annotations

from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.worker import func

from app.core.clock import utcnow
from app.core.tasks import counted
from app.core.worker_context import WorkerContext
from app.notifications.service import notify_owners


@counted
async def notify_owners_scan(ctx: dict[str, Any]) -> dict[str, int]:
    typed = cast(WorkerContext, ctx)
    report = await notify_owners(
        typed["session_factory"], typed["settings"], typed["http"], utcnow()
    )
    return {"notified": report.notified, "failed": report.failed}


TASKS: list[Any] = [func(notify_owners_scan, name="notify_owners_scan", keep_result=0)]
CRON_JOBS: list[CronJob] = [
    cron(notify_owners_scan, second={20}, run_at_startup=True, unique=True, keep_result=0),
]
