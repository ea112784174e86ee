"""What the contacts domain tells the domains above it (segments keep memberships current).

- `contacts_changed(session, workspace_id, contact_ids)`: attributes, consent or identity of
  these contacts changed (upsert, update, consent, erasure).
- `contact_leaving(session, workspace_id, contact_id, now)`: this contact is about to be
  hard-deleted or erased; subscribers end what they hold about it first.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.notices import Notice

contacts_changed: Notice[[AsyncSession, uuid.UUID, Collection[uuid.UUID]]] = Notice(
    "contacts_changed"
)
contact_leaving: Notice[[AsyncSession, uuid.UUID, uuid.UUID, datetime]] = Notice("contact_leaving")
