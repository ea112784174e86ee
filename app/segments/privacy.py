"""The segments domain's part of a privacy request: memberships and their journal in the
export; erasure ends every membership through the journal (registered by app/wiring.py)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.privacy.schemas import MembershipChangeRecord, MembershipRecord
from app.segments.membership import end_memberships
from app.segments.privacy_repository import ContactMembershipRecords

if TYPE_CHECKING:
    from app.contacts.models import Contact
    from app.contacts.privacy.sections import ErasureContext


async def export_section(
    session: AsyncSession, workspace_id: uuid.UUID, contact: Contact
) -> dict[str, Any]:
    records = ContactMembershipRecords(session, workspace_id)
    memberships = await records.memberships(contact.id)
    changes = await records.changes(contact.id)
    return {
        "memberships": [
            MembershipRecord.model_validate(row).model_dump(mode="json") for row in memberships
        ],
        "changes": [
            MembershipChangeRecord.model_validate(c).model_dump(mode="json") for c in changes
        ],
    }


async def erase(session: AsyncSession, context: ErasureContext) -> dict[str, int]:
    """End every membership through the segments domain's own journal (`left` + count)."""
    removed = await end_memberships(session, context.workspace_id, context.contact.id, context.now)
    return {"segment_memberships_removed": removed}
