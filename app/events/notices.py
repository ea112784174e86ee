"""What the events domain tells the domains above it: new events were stored.

Segments re-evaluate the contacts' memberships; the engine wakes enrollments waiting for
(or exiting on) these events. Published once per ingested batch, set-wise.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.notices import Notice


@dataclass(frozen=True, slots=True)
class IngestedEvent:
    """One newly stored event, as subscribers receive it."""

    id: uuid.UUID
    contact_id: uuid.UUID
    type: str
    occurred_at: datetime


events_recorded: Notice[[AsyncSession, uuid.UUID, Sequence[IngestedEvent]]] = Notice(
    "events_recorded"
)
