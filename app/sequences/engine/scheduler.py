"""The scheduler scan: lease due enrollments and hand them to arq in batches.

Postgres holds every enrollment's next action (`next_action_at`); arq only wakes workers.
The scan leases due rows (`lease_until`) and enqueues one job per batch under a
deterministic id. A lease that runs out before its job advanced the rows (Redis flushed, a
worker killed) makes them due again for a later scan: the scan is also the reconciler.
Rows due within `lookahead` are leased early and their job deferred to the due instant, so
a step starts close to its time instead of up to a scan interval late.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.jobs import enqueue
from app.sequences.engine.repository import lease_due_enrollments

RUN_TASK = "run_enrollments"
# Rows due within this span share a job (which runs when the last of them is due).
BUCKET = timedelta(milliseconds=100)


@dataclass(frozen=True)
class Batch:
    workspace_id: uuid.UUID
    ids: list[uuid.UUID]
    due: datetime  # the latest due instant in the batch


async def lease_due(
    session: AsyncSession, settings: Settings, now: datetime, lookahead: timedelta
) -> list[Batch]:
    """Lease up to `scan_limit` rows due by `now + lookahead`, in due order; enqueue their
    batches (after commit) and return them."""
    lease_until = now + timedelta(seconds=settings.engine.lease_seconds)
    rows = await lease_due_enrollments(
        session, now, now + lookahead, settings.engine.scan_limit, lease_until
    )
    batches = _batches(rows, settings.engine.batch_size, now)
    for batch in batches:
        schedule(session, batch, now, lease_until)
    return batches


def schedule(session: AsyncSession, batch: Batch, now: datetime, tag: object) -> None:
    """Enqueue one batch (after commit), deferred to its due instant when in the future."""
    delay = max(0.0, (batch.due - now).total_seconds())
    enqueue(
        session,
        RUN_TASK,
        str(batch.workspace_id),
        [str(item) for item in batch.ids],
        job_key=(batch.ids[0], tag),
        defer_by_seconds=delay or None,
    )


def _batches(
    rows: list[tuple[uuid.UUID, uuid.UUID, datetime | None]], size: int, now: datetime
) -> list[Batch]:
    """Batches per workspace of rows due within one bucket of each other. Overdue rows count
    as due now, so a backlog (after downtime, a pause, a big launch) fills whole batches
    instead of one small job per 100 ms of past due times."""
    by_workspace: dict[uuid.UUID, list[tuple[datetime, uuid.UUID]]] = defaultdict(list)
    for workspace_id, enrollment_id, due in rows:
        assert due is not None  # live rows selected by due time
        by_workspace[workspace_id].append((max(due, now), enrollment_id))
    batches: list[Batch] = []
    for workspace_id, items in by_workspace.items():
        items.sort()
        chunk: list[tuple[datetime, uuid.UUID]] = []
        for item in items:
            if chunk and (len(chunk) >= size or item[0] - chunk[0][0] > BUCKET):
                batches.append(Batch(workspace_id, [i[1] for i in chunk], chunk[-1][0]))
                chunk = []
            chunk.append(item)
        if chunk:
            batches.append(Batch(workspace_id, [i[1] for i in chunk], chunk[-1][0]))
    return batches
