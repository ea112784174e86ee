"""Periodic housekeeping jobs."""

from __future__ import annotations

from typing import Any, cast

from app.core.clock import utcnow
from app.core.idempotency import purge_expired
from app.core.tasks import counted, task_session
from app.core.worker_context import WorkerContext


@counted
async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Drop idempotency records past their 24 h retention."""
    async with task_session(cast(WorkerContext, ctx)) as session:
        return await purge_expired(session, utcnow())
