"""Wake-ups, set-wise, once per batch: event ingestion wakes the enrollments an event
concerns; a settled message wakes the enrollment waiting on its send step."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.events.notices import IngestedEvent
from app.sequences.engine.repository import EngineRepository, settled_enrollments
from app.sequences.engine.scheduler import Batch, schedule

WAKE_BATCH = 500


async def wake_for_events(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    pairs: Collection[tuple[uuid.UUID, str]],
    now: datetime,
) -> list[uuid.UUID]:
    """Enrollments of these (contact, event type) pairs that wait for the type, or exit on
    it, become due now; their run is enqueued after commit, so a reply is acted on within
    moments rather than at the next scan. The claim then decides from the events table
    (filters, time bounds), so a wake-up that does not match costs a no-op pass."""
    woken = await EngineRepository(session, workspace_id).wake(pairs, now)
    size = WAKE_BATCH
    for start in range(0, len(woken), size):
        ids = woken[start : start + size]
        schedule(session, Batch(workspace_id, ids, now), now, ("wake", now.timestamp()))
    return woken


async def on_events_recorded(
    session: AsyncSession, workspace_id: uuid.UUID, events: Sequence[IngestedEvent]
) -> None:
    """Subscriber of `events_recorded`: wake the enrollments these events concern."""
    pairs = {(event.contact_id, event.type) for event in events}
    await wake_for_events(session, workspace_id, pairs, utcnow())


async def wake_settled(
    session: AsyncSession, settled: Collection[tuple[uuid.UUID, uuid.UUID, str, int]], now: datetime
) -> list[uuid.UUID]:
    """Messages reached a final status (sent, failed, unknown): their enrollments, parked on
    the send step that created them (same step and visit), become due now and their run is
    enqueued after commit. One statement for the whole batch, whatever its workspaces."""
    woken = await settled_enrollments(session, settled, now)
    by_workspace: dict[uuid.UUID, list[uuid.UUID]] = {}
    for workspace_id, enrollment_id in woken:
        by_workspace.setdefault(workspace_id, []).append(enrollment_id)
    for workspace_id, ids in by_workspace.items():
        ids.sort()
        for start in range(0, len(ids), WAKE_BATCH):
            chunk = ids[start : start + WAKE_BATCH]
            schedule(session, Batch(workspace_id, chunk, now), now, ("settled", now.timestamp()))
    return [enrollment_id for _, enrollment_id in woken]
