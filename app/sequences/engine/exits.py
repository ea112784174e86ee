"""Ending and holding enrollments from outside the engine, set-wise: unsubscribes and hard
bounces (by contact), manual exits (by id), permanent send failures, campaign pause,
resume and cancel (by campaign). Each writes a timeline row per enrollment it ends."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.sequences.engine.claims import skip_due_sends
from app.sequences.engine.emissions import Ended, emit_ended
from app.sequences.engine.repository import EngineRepository


async def exit_enrollments(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    contact_ids: Collection[uuid.UUID],
    reason: str,
    now: datetime,
) -> list[uuid.UUID]:
    """Exit every live or paused enrollment of these contacts (e.g. `unsubscribed`)."""
    return await _end(session, workspace_id, "exited", reason, now, contact_ids=contact_ids)


async def exit_by_id(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    enrollment_ids: Collection[uuid.UUID],
    reason: str,
    now: datetime,
) -> list[uuid.UUID]:
    return await _end(session, workspace_id, "exited", reason, now, enrollment_ids=enrollment_ids)


async def fail_enrollments(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    enrollment_ids: Collection[uuid.UUID],
    reason: str,
    now: datetime,
) -> list[uuid.UUID]:
    """Fail enrollments whose sequence says `on_send_failure: fail` after a permanent error."""
    return await _end(session, workspace_id, "failed", reason, now, enrollment_ids=enrollment_ids)


async def cancel_campaign(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, now: datetime
) -> list[uuid.UUID]:
    return await _end(
        session, workspace_id, "exited", "campaign_cancelled", now, campaign_id=campaign_id
    )


async def pause_campaign(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID, now: datetime
) -> int:
    """Hold the campaign's live enrollments: the scan skips `paused` rows."""
    rows = await EngineRepository(session, workspace_id).set_paused(campaign_id, True, now)
    return len(rows)


async def resume_campaign(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    now: datetime,
    overdue: Literal["send_now", "skip"] = "send_now",
) -> int:
    """Re-arm held enrollments; waits in progress keep their deadline. A send (or webhook)
    step that fell due during the pause runs at once (`send_now`: its `next_action_at` is
    already past) or is passed over (`skip`: a `skipped` row, the next step due now)."""
    rows = await EngineRepository(session, workspace_id).set_paused(campaign_id, False, now)
    if overdue == "skip":
        due = [row[0] for row in rows if row[1] is not None and row[1] <= now and not row[2]]
        await skip_due_sends(session, workspace_id, due, now, "campaign_paused")
    return len(rows)


async def _end(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    state: str,
    reason: str,
    now: datetime,
    **selection: object,
) -> list[uuid.UUID]:
    repo = EngineRepository(session, workspace_id)
    rows = await repo.end_live(state, reason, now, **selection)  # type: ignore[arg-type]
    await repo.insert_steps(
        [
            {
                "id": new_id(),
                "workspace_id": workspace_id,
                "enrollment_id": enrollment_id,
                "step_key": step_key,
                "step_type": None,
                "visit": 0,
                "outcome": state,
                "detail": {"reason": reason},
                "due_at": None,
                "occurred_at": now,
                "message_id": None,
            }
            for enrollment_id, step_key, *_ in rows
        ]
    )
    await emit_ended(
        session,
        workspace_id,
        [Ended(row[0], row[2], row[3], row[4], row[5], state, reason) for row in rows],
        now,
    )
    return [row[0] for row in rows]
