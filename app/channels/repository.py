"""Message reads for the API (workspace-scoped) and for the token endpoints (by id: the
signed token is the authority, there is no caller workspace)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.models import Message
from app.channels.schemas import MessageFilters
from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository


class MessageRepository(WorkspaceRepository[Message]):
    model = Message
    noun = "message"

    async def list_messages(
        self, params: PageParams, filters: MessageFilters
    ) -> PageResult[Message]:
        conditions = []
        if filters.enrollment_id is not None:
            conditions.append(Message.enrollment_id == filters.enrollment_id)
        if filters.contact_id is not None:
            conditions.append(Message.contact_id == filters.contact_id)
        if filters.status is not None:
            conditions.append(Message.status == filters.status)
        if filters.channel is not None:
            conditions.append(Message.channel == filters.channel)
        return await self.page(params, *conditions)


async def message_by_token_id(session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    result = await session.execute(select(Message).where(Message.id == message_id))
    return result.scalar_one_or_none()


async def mark_first(
    session: AsyncSession, message_id: uuid.UUID, column: str, now: datetime
) -> None:
    """Set `first_opened_at` / `first_clicked_at` once (later opens leave it alone)."""
    target = getattr(Message, column)
    await session.execute(
        update(Message)
        .where(Message.id == message_id, target.is_(None))
        .values({column: now, "updated_at": now})
        .execution_options(synchronize_session=False)
    )
