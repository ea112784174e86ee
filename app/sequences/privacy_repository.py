"""Queries of a privacy request for one contact's sequence data, scoped by workspace: its
enrollments and their timelines, and the messages the engine wrote for it (the channels
domain's `messages`, filled by the engine): read for an export, scrubbed for an erasure."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.models import Message
from app.core.db import rowcount
from app.sequences.models import Enrollment, EnrollmentStep


class ContactSequenceRecords:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def enrollments(self, contact_id: uuid.UUID) -> Sequence[Enrollment]:
        result = await self.session.execute(
            select(Enrollment)
            .where(
                Enrollment.workspace_id == self.workspace_id, Enrollment.contact_id == contact_id
            )
            .order_by(Enrollment.id)
        )
        return result.scalars().all()

    async def timeline_steps(
        self, enrollment_ids: Collection[uuid.UUID]
    ) -> Sequence[EnrollmentStep]:
        result = await self.session.execute(
            select(EnrollmentStep)
            .where(
                EnrollmentStep.workspace_id == self.workspace_id,
                EnrollmentStep.enrollment_id.in_(list(enrollment_ids)),
            )
            .order_by(EnrollmentStep.id)
        )
        return result.scalars().all()

    async def messages(self, contact_id: uuid.UUID) -> Sequence[Message]:
        result = await self.session.execute(
            select(Message)
            .where(Message.workspace_id == self.workspace_id, Message.contact_id == contact_id)
            .order_by(Message.id)
        )
        return result.scalars().all()

    async def scrub_messages(self, contact_id: uuid.UUID, now: datetime) -> int:
        """Remove the rendered content and address from every message to the contact (the
        rows and statuses stay for metrics). Returns how many."""
        result = await self.session.execute(
            update(Message)
            .where(Message.workspace_id == self.workspace_id, Message.contact_id == contact_id)
            .values(recipient=None, content={}, error=None, response=None, updated_at=now)
        )
        return rowcount(result)
