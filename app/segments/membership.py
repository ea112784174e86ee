"""Entry point other domains call when contacts change (attributes, events, consent), so
dynamic segment membership is re-evaluated for just those contacts.

Owned by the segments domain; contacts and events only call `note_contacts_changed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncSession


async def note_contacts_changed(
    session: AsyncSession, workspace_id: uuid.UUID, contact_ids: Collection[uuid.UUID]
) -> None:
    """Schedule re-evaluation of these contacts' dynamic memberships after commit.

    Implemented by the segments domain (issue 3, dynamic membership); until then a no-op.
    """
    return None
