"""Privacy requests reach sequences and messages: an export lists the contact's enrollments
(with their timelines) and messages; an erasure exits the contact's enrollments and removes
the rendered content and address from every message (metrics keep the rows and statuses)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.privacy.sections import (
    ErasureContext,
    register_erasure_step,
    register_export_section,
)
from app.sequences.engine.exits import exit_enrollments
from app.sequences.privacy_repository import ContactSequenceRecords

if TYPE_CHECKING:
    from app.contacts.models import Contact

_ENROLLMENT_FIELDS = (
    "id",
    "sequence_id",
    "campaign_id",
    "state",
    "step_key",
    "next_action_at",
    "exit_reason",
    "started_at",
    "finished_at",
)
_MESSAGE_FIELDS = (
    "id",
    "enrollment_id",
    "step_key",
    "channel",
    "variant",
    "recipient",
    "content",
    "status",
    "created_at",
    "sent_at",
    "delivered_at",
    "first_opened_at",
    "first_clicked_at",
    "replied_at",
)


def _plain(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    record: dict[str, Any] = to_jsonable_python({name: getattr(row, name) for name in fields})
    return record


async def _enrollments_section(
    session: AsyncSession, workspace_id: uuid.UUID, contact: Contact
) -> list[dict[str, Any]]:
    records = ContactSequenceRecords(session, workspace_id)
    enrollments = await records.enrollments(contact.id)
    steps = await records.timeline_steps([item.id for item in enrollments])
    timelines: dict[uuid.UUID, list[dict[str, Any]]] = {item.id: [] for item in enrollments}
    for step in steps:
        timelines[step.enrollment_id].append(
            _plain(step, ("step_key", "step_type", "outcome", "detail", "occurred_at"))
        )
    return [
        {**_plain(item, _ENROLLMENT_FIELDS), "timeline": timelines[item.id]} for item in enrollments
    ]


async def _messages_section(
    session: AsyncSession, workspace_id: uuid.UUID, contact: Contact
) -> list[dict[str, Any]]:
    messages = await ContactSequenceRecords(session, workspace_id).messages(contact.id)
    return [_plain(message, _MESSAGE_FIELDS) for message in messages]


async def _erase_sequences(session: AsyncSession, context: ErasureContext) -> dict[str, int]:
    ended = await exit_enrollments(
        session, context.workspace_id, [context.contact.id], "contact_erased", context.now
    )
    records = ContactSequenceRecords(session, context.workspace_id)
    scrubbed = await records.scrub_messages(context.contact.id, context.now)
    return {"enrollments_exited": len(ended), "messages_scrubbed": scrubbed}


def register() -> None:
    """Called once per process by app/wiring.py."""
    register_export_section("enrollments", _enrollments_section)
    register_export_section("messages", _messages_section)
    register_erasure_step("sequences", _erase_sequences)
