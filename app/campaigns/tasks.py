"""arq tasks of campaigns (registered in app/worker/settings.py).

`campaigns_scan` runs every second (`unique`, so one worker runs each tick): it leases the
due campaign actions in one short transaction, then runs each in its own transaction. A
failing action is logged and left leased; its lease expiry makes it scannable again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import structlog
from arq import cron
from arq.cron import CronJob
from arq.worker import func

from app.campaigns.lifecycle.actions import lease_due, run_action
from app.core.clock import utcnow
from app.core.tasks import counted, task_session
from app.core.worker_context import WorkerContext

log = structlog.get_logger("herald.campaigns")


@counted
async def campaigns_scan(ctx: dict[str, Any]) -> int:
    """Run the due campaign actions (launch, end, trigger sweeps, completion checks)."""
    typed = cast(WorkerContext, ctx)
    lease = timedelta(seconds=typed["settings"].engine.lease_seconds)
    async with task_session(typed) as session:
        leased = await lease_due(session, utcnow(), lease)
    ran = 0
    for item in leased:
        try:
            async with task_session(typed) as session:
                outcome = await run_action(session, item, utcnow())
        except Exception:  # one broken campaign must not stop the others' actions
            log.exception("campaign_action_failed", action_id=str(item.action_id))
            continue
        ran += outcome is not None
    return ran


TASKS: list[Any] = [func(campaigns_scan, name="campaigns_scan", keep_result=0)]
CRON_JOBS: list[CronJob] = [
    cron(campaigns_scan, second=set(range(60)), run_at_startup=True, unique=True, keep_result=0),
]
