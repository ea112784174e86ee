"""arq tasks of experiments (registered in app/worker/settings.py).

`experiments_auto_declare` runs every minute (`unique`: one worker per tick) over every
automatic setting whose step has no winner yet, each checked in its own transaction; the
check is a pure function of the rows, so a missed tick only delays a declaration.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import structlog
from arq import cron
from arq.cron import CronJob
from arq.worker import func

from app.core.tasks import counted, task_session
from app.core.worker_context import WorkerContext
from app.experiments import service
from app.experiments.repository import due_settings

log = structlog.get_logger("herald.experiments")
PAGE = 500


@counted
async def experiments_auto_declare(ctx: dict[str, Any]) -> int:
    """Declare the winners automatic settings call for; returns how many were declared."""
    typed = cast(WorkerContext, ctx)
    declared = 0
    after: uuid.UUID | None = None
    while True:
        async with task_session(typed) as session:
            due = await due_settings(session, after, PAGE)
        for setting_id, workspace_id, campaign_id, step_key in due:
            after = setting_id
            try:
                async with task_session(typed) as session:
                    found = await service.auto_declare(session, workspace_id, campaign_id, step_key)
            except Exception:  # one broken experiment must not stop the others
                log.exception("auto_declare_failed", campaign_id=str(campaign_id), step=step_key)
                continue
            declared += found is not None
        if len(due) < PAGE:
            return declared


TASKS: list[Any] = [func(experiments_auto_declare, name="experiments_auto_declare", keep_result=0)]
CRON_JOBS: list[CronJob] = [
    cron(experiments_auto_declare, second={30}, run_at_startup=True, unique=True, keep_result=0),
]
