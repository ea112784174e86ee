"""The events domain's part of a privacy request: its export section and erasure step
(registered by app/wiring.py through the contacts domain's privacy registry)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.privacy.schemas import EventRecord
from app.events.repository import EventRepository

if TYPE_CHECKING:
    from app.contacts.models import Contact
    from app.contacts.privacy.sections import ErasureContext


async def export_section(
    session: AsyncSession, workspace_id: uuid.UUID, contact: Contact
) -> list[dict[str, Any]]:
    events = await EventRepository(session, workspace_id).of_contact(contact.id)
    return [EventRecord.model_validate(event).model_dump(mode="json") for event in events]


async def erase(session: AsyncSession, context: ErasureContext) -> dict[str, int]:
    repository = EventRepository(session, context.workspace_id)
    return {"events_scrubbed": await repository.scrub_contact(context.contact.id)}
