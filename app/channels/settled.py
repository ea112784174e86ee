"""What follows messages reaching `sent`, `failed` or `unknown`, in the transaction that
settled them (an outcome write of delivery, or the lease scan): their `message.*` webhook
events, and the `messages_settled` notice (the engine moves on the enrollments waiting on
those send steps)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.delivery_repository import Settled
from app.channels.notices import messages_settled
from app.outbox import emit
from app.outbox.catalogue import EventData, MessageFailed, MessageSent, MessageUnknown

_EVENTS: dict[str, type[MessageSent | MessageFailed | MessageUnknown]] = {
    "sent": MessageSent,
    "failed": MessageFailed,
    "unknown": MessageUnknown,
}


async def announce_settled(
    session: AsyncSession, settled: Sequence[Settled], now: datetime
) -> None:
    """One emission call for the whole batch, then one notice (one wake-up statement)."""
    await emit_settled(session, settled, now)
    await messages_settled.publish(
        session,
        [(row.workspace_id, row.enrollment_id, row.step_key, row.visit) for row in settled],
        now,
    )


async def emit_settled(session: AsyncSession, settled: Sequence[Settled], now: datetime) -> int:
    """`message.sent` / `message.failed` / `message.unknown` for a batch, in one call (one
    subscription query for the batch's workspaces; nothing built when nobody listens)."""
    if not settled:
        return 0

    async def build() -> list[emit.Emission]:
        emissions: list[emit.Emission] = []
        for row in settled:
            event = _EVENTS[row.status]
            extra = {"error": row.error} if event is MessageFailed else {}
            data: EventData = emit.message_data(event, row, **extra)
            emissions.append(emit.Emission(row.workspace_id, data, now))
        return emissions

    workspaces = {row.workspace_id for row in settled}
    types = {_EVENTS[row.status].TYPE for row in settled}
    return await emit.emit_lazy(session, workspaces, types, build)
