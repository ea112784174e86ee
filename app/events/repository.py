"""Event queries. Ingestion is set-wise: each statement here handles a whole batch through
`unnest` / `= ANY` arrays, so a batch costs a constant number of round trips."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, text, update

from app.core.db import rowcount
from app.core.ids import new_id
from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository, window_clauses
from app.events.models import Event
from app.events.schemas import EventFilters


@dataclass(frozen=True, slots=True)
class ContactRef:
    id: uuid.UUID
    external_id: str | None
    email: str | None
    erased: bool


@dataclass(frozen=True, slots=True)
class EventRows:
    """Column arrays of the events to insert (index i across all lists is one event)."""

    ids: list[uuid.UUID]
    contact_ids: list[uuid.UUID]
    types: list[str]
    properties: list[str]
    revenues: list[float | None]
    occurred_at: list[datetime]
    sources: list[str | None]
    client_event_ids: list[str | None]


# FOR KEY SHARE (what the events' foreign key check takes anyway, only earlier): an erasure
# in progress holds the contact FOR UPDATE, so this waits for it and then reads the erased
# row; without it the events landed after the erasure committed, properties and all.
_FIND_CONTACTS = text(
    """
    SELECT id, external_id, email, erased_at IS NOT NULL AS erased
    FROM contacts
    WHERE workspace_id = :workspace_id
      AND (id = ANY(CAST(:ids AS uuid[]))
           OR external_id = ANY(CAST(:external_ids AS text[]))
           OR email = ANY(CAST(:emails AS text[])))
    FOR KEY SHARE
    """
)

# ON CONFLICT without a target: a contact another transaction created meanwhile (by email or
# external id) is skipped here and found by the re-select that follows.
_CREATE_CONTACTS = text(
    """
    INSERT INTO contacts (id, workspace_id, external_id, email, attributes, created_at, updated_at)
    SELECT i, :workspace_id, x, e, '{}'::jsonb, :now, :now
    FROM unnest(CAST(:ids AS uuid[]), CAST(:external_ids AS text[]), CAST(:emails AS text[]))
         AS t(i, x, e)
    ON CONFLICT DO NOTHING
    RETURNING id, external_id, email
    """
)

_INSERT_EVENTS = text(
    """
    INSERT INTO events (id, workspace_id, contact_id, type, properties, revenue, occurred_at,
                        received_at, source, client_event_id)
    SELECT i, :workspace_id, c, t, p::jsonb, r, o, :now, s, k
    FROM unnest(CAST(:ids AS uuid[]), CAST(:contact_ids AS uuid[]), CAST(:types AS text[]),
                CAST(:properties AS text[]), CAST(:revenues AS float8[]),
                CAST(:occurred_at AS timestamptz[]), CAST(:sources AS text[]),
                CAST(:client_event_ids AS text[]))
         AS v(i, c, t, p, r, o, s, k)
    ON CONFLICT (workspace_id, client_event_id) WHERE client_event_id IS NOT NULL DO NOTHING
    RETURNING id
    """
)

_FIND_BY_CLIENT_IDS = text(
    """
    SELECT client_event_id, id, contact_id
    FROM events
    WHERE workspace_id = :workspace_id AND client_event_id = ANY(CAST(:keys AS text[]))
    """
)

# The contacts are locked in id order first (the InitPlan reads the whole CTE before the
# update starts), so concurrent batches sharing contacts queue instead of deadlocking. Both
# scans use `id = ANY(...)` on the primary key: stable plans, never a scan of the workspace.
_TOUCH_ACTIVITY = text(
    """
    WITH locked AS MATERIALIZED (
        SELECT id FROM contacts
        WHERE workspace_id = :workspace_id AND id = ANY(CAST(:contact_ids AS uuid[]))
        ORDER BY id
        FOR NO KEY UPDATE
    )
    UPDATE contacts SET last_activity_at = GREATEST(contacts.last_activity_at, v.o)
    FROM unnest(CAST(:contact_ids AS uuid[]), CAST(:latest AS timestamptz[])) AS v(c, o)
    WHERE contacts.id = ANY(ARRAY(SELECT id FROM locked))
      AND contacts.id = v.c
      AND (contacts.last_activity_at IS NULL OR contacts.last_activity_at < v.o)
    """
)


class EventRepository(WorkspaceRepository[Event]):
    model = Event
    noun = "event"

    async def list_events(self, params: PageParams, filters: EventFilters) -> PageResult[Event]:
        conditions: list[ColumnElement[bool]] = []
        if filters.contact_id is not None:
            conditions.append(Event.contact_id == filters.contact_id)
        if filters.type is not None:
            conditions.append(Event.type == filters.type)
        conditions += window_clauses(
            Event.occurred_at, (filters.occurred_after, filters.occurred_before)
        )
        return await self.page(params, *conditions)

    async def find_contacts(
        self, ids: Sequence[uuid.UUID], external_ids: Sequence[str], emails: Sequence[str]
    ) -> list[ContactRef]:
        if not (ids or external_ids or emails):
            return []
        result = await self.session.execute(
            _FIND_CONTACTS,
            {
                "workspace_id": self.workspace_id,
                "ids": list(ids),
                "external_ids": list(external_ids),
                "emails": list(emails),
            },
        )
        return [ContactRef(row[0], row[1], row[2], row[3]) for row in result]

    async def create_contacts(
        self, external_ids: Sequence[str | None], emails: Sequence[str | None], now: datetime
    ) -> list[ContactRef]:
        """Create contacts (one per position); returns those this statement created."""
        result = await self.session.execute(
            _CREATE_CONTACTS,
            {
                "workspace_id": self.workspace_id,
                "now": now,
                "ids": [new_id() for _ in external_ids],
                "external_ids": list(external_ids),
                "emails": list(emails),
            },
        )
        return [ContactRef(row[0], row[1], row[2], False) for row in result]

    async def insert_events(self, rows: EventRows, now: datetime) -> set[uuid.UUID]:
        """Insert every row in one statement; returns the ids actually inserted (the others
        carry a client event id that already exists)."""
        result = await self.session.execute(
            _INSERT_EVENTS,
            {
                "workspace_id": self.workspace_id,
                "now": now,
                "ids": rows.ids,
                "contact_ids": rows.contact_ids,
                "types": rows.types,
                "properties": rows.properties,
                "revenues": rows.revenues,
                "occurred_at": rows.occurred_at,
                "sources": rows.sources,
                "client_event_ids": rows.client_event_ids,
            },
        )
        return {row[0] for row in result}

    async def originals(
        self, client_event_ids: Sequence[str]
    ) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
        """client event id -> (event id, contact id) of the stored events."""
        if not client_event_ids:
            return {}
        result = await self.session.execute(
            _FIND_BY_CLIENT_IDS,
            {"workspace_id": self.workspace_id, "keys": list(client_event_ids)},
        )
        return {row[0]: (row[1], row[2]) for row in result}

    async def touch_last_activity(
        self, contact_ids: Sequence[uuid.UUID], latest: Sequence[datetime]
    ) -> None:
        """last_activity_at = GREATEST(current, latest) per contact, in one statement."""
        if not contact_ids:
            return
        await self.session.execute(
            _TOUCH_ACTIVITY,
            {
                "workspace_id": self.workspace_id,
                "contact_ids": list(contact_ids),
                "latest": list(latest),
            },
        )

    # --- privacy requests (app/events/privacy.py) ------------------------------------------

    async def of_contact(self, contact_id: uuid.UUID) -> Sequence[Event]:
        result = await self.session.execute(
            self.scoped()
            .where(Event.contact_id == contact_id)
            .order_by(Event.occurred_at, Event.id)
        )
        return result.scalars().all()

    async def scrub_contact(self, contact_id: uuid.UUID) -> int:
        """Empty properties and client ids (free-form, may hold PII); keep type, time, revenue."""
        result = await self.session.execute(
            update(Event)
            .where(Event.workspace_id == self.workspace_id, Event.contact_id == contact_id)
            .values(properties={}, client_event_id=None)
        )
        return rowcount(result)
