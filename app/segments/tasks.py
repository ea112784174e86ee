"""arq tasks of this domain (registered in app/worker/settings.py).

The two refresh jobs keep no result (`keep_result=0`): their ids are deterministic per
workspace / segment, and a kept result would block the next enqueue under the same id for
an hour. While one is queued or running, enqueueing the same id again is a no-op, which is
how bursts coalesce."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.worker import func

from app.core.clock import utcnow
from app.core.tasks import counted, in_batches, task_session
from app.core.worker_context import WorkerContext
from app.segments import membership

# Rounds of DIRTY_BATCH contacts one job drains before leaving the rest to the next job.
MAX_ROUNDS = 40
# Rows of each kind one purge transaction deletes.
PURGE_BATCH = 10_000


@counted
async def segments_refresh_contacts(ctx: dict[str, Any], workspace_id: str) -> int:
    """Re-evaluate dynamic memberships for the workspace's dirty contacts, batch by batch
    (one transaction each), until none are left; rows committed meanwhile are drained too."""
    typed = cast(WorkerContext, ctx)
    workspace = uuid.UUID(workspace_id)
    total = 0
    for _ in range(MAX_ROUNDS):
        async with task_session(typed) as session:
            taken = await membership.refresh_contacts(session, workspace, utcnow())
        if taken is None:
            return total
        total += taken
    # Still more after a long drain: stop here so one busy workspace cannot hold a worker
    # slot forever; the periodic sweep enqueues the workspace again within a minute.
    return total


@counted
async def segments_refresh_segment(ctx: dict[str, Any], workspace_id: str, segment_id: str) -> int:
    """Full re-evaluation of one dynamic segment; answers its member count change."""
    async with task_session(cast(WorkerContext, ctx)) as session:
        moves = await membership.refresh_segment(
            session, uuid.UUID(workspace_id), uuid.UUID(segment_id), utcnow()
        )
    return 0 if moves is None else moves.entered - moves.left


@counted
async def segments_tick(ctx: dict[str, Any]) -> dict[str, int]:
    """Every minute: enqueue due refreshes and record count snapshots."""
    async with task_session(cast(WorkerContext, ctx)) as session:
        result = await membership.sweep(session, utcnow())
    return {
        "dirty_workspaces": result.dirty_workspaces,
        "refreshes": result.refreshes,
        "snapshots": result.snapshots,
    }


@counted
async def segments_purge_history(ctx: dict[str, Any]) -> dict[str, int]:
    """Daily: membership journal rows and count snapshots past `history_retention_days`,
    in batches of one transaction each."""
    typed = cast(WorkerContext, ctx)
    cutoff = utcnow() - timedelta(days=typed["settings"].segments.history_retention_days)
    return await in_batches(
        typed,
        ("changes", "snapshots"),
        PURGE_BATCH,
        lambda session: membership.purge_history(session, cutoff, PURGE_BATCH),
    )


TASKS: list[Any] = [
    func(segments_refresh_contacts, name="segments_refresh_contacts", keep_result=0),
    func(segments_refresh_segment, name="segments_refresh_segment", keep_result=0),
    segments_tick,
    func(segments_purge_history, name="segments_purge_history", keep_result=0, timeout=3600),
]
CRON_JOBS: list[CronJob] = [
    cron(segments_tick, second={0}, run_at_startup=True, unique=True),
    cron(segments_purge_history, hour={3}, minute={53}, unique=True, run_at_startup=False),
]
