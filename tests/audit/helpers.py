"""Seeding audit events through the real `record()` (the only write path)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import Actor, record
from app.core.db import transaction
from app.core.request_context import current_request_id, set_request_id


async def seed(
    factory: async_sessionmaker[AsyncSession],
    workspace_id: uuid.UUID,
    action: str,
    *,
    actor: Actor | None = None,
    entity_type: str = "campaign",
    entity_id: uuid.UUID | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> uuid.UUID:
    previous = current_request_id()
    set_request_id(request_id)
    try:
        async with transaction(factory) as session:
            event = await record(
                session,
                workspace_id,
                actor or Actor.system(),
                action,
                entity_type=entity_type,
                entity_id=entity_id,
                **extra,
            )
        return event.id
    finally:
        set_request_id(previous)
