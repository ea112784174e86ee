"""The dry run's read-back: the throwaway enrollment's timeline and the messages the engine
wrote for it (a read of the channels domain's `messages`, which the engine fills), read
inside the savepoint before it is rolled back."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.models import Message
from app.sequences.models import EnrollmentStep


class SimulationRecords:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def timeline(self, enrollment_id: uuid.UUID) -> list[EnrollmentStep]:
        """Its steps in the order they happened."""
        steps = await self.session.scalars(
            select(EnrollmentStep)
            .where(
                EnrollmentStep.workspace_id == self.workspace_id,
                EnrollmentStep.enrollment_id == enrollment_id,
            )
            .order_by(EnrollmentStep.occurred_at, EnrollmentStep.id)
        )
        return list(steps)

    async def messages(self, enrollment_id: uuid.UUID) -> dict[uuid.UUID, Message]:
        """Its messages by id."""
        messages = await self.session.scalars(
            select(Message).where(
                Message.workspace_id == self.workspace_id, Message.enrollment_id == enrollment_id
            )
        )
        return {message.id: message for message in messages}
