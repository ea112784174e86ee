"""What the channels domain tells the domains above it (the engine), without importing them.

- `messages_settled(session, settled, now)`: these messages reached a final status (sent,
  failed, unknown); `settled` holds (workspace_id, enrollment_id, step_key, visit) of each,
  so the enrollments parked on those send steps can go on. One publish per outcome write.
- `contacts_stopped(session, workspace_id, contact_ids, reason, now)`: these contacts must
  not be messaged any more (`unsubscribed`, a hard bounce, a complaint): their enrollments
  end with `reason`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.notices import Notice

SettledSend = tuple[uuid.UUID, uuid.UUID, str, int]

messages_settled: Notice[[AsyncSession, Collection[SettledSend], datetime]] = Notice(
    "messages_settled"
)
contacts_stopped: Notice[[AsyncSession, uuid.UUID, Collection[uuid.UUID], str, datetime]] = Notice(
    "contacts_stopped"
)
