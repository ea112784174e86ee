"""Event ingestion and reads. Stateless; the caller owns the transaction.

A batch goes through a fixed number of statements whatever its size: find contacts, create
the missing ones (+ one re-select for those a concurrent transaction created), insert the
events, fetch the originals of duplicates, move `last_activity_at`. Python only loops to
build arrays, never to issue SQL per event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.errors import FieldError, Unprocessable, pointer_for
from app.core.ids import new_id, new_ids
from app.core.normalize import normalize_email
from app.core.pagination import PageParams, PageResult
from app.events.models import Event
from app.events.notices import IngestedEvent, events_recorded
from app.events.repository import ContactRef, EventRepository, EventRows
from app.events.schemas import (
    RESERVED_PREFIX,
    EventFilters,
    EventIn,
    ItemStatus,
)
from app.workspaces.service import get_settings

# Clocks drift; more than this ahead of ours is a client bug, not an event.
FUTURE_TOLERANCE = timedelta(minutes=5)
# contacts.email is VARCHAR(320); the schema checks the length before normalisation.
MAX_EMAIL_LENGTH = 320

ContactKey = tuple[str, Any]  # ("id", UUID) | ("external_id", str) | ("email", str)


_NO_ID = uuid.UUID(int=0)


@dataclass(slots=True)
class _Item:
    index: int
    event: EventIn
    key: ContactKey
    contact_id: uuid.UUID | None = None
    event_id: uuid.UUID = _NO_ID


class _Answers:
    """Per-item outcomes of one ingestion call, in request order (plain dicts: a batch
    answers 1,000 of them and model instances cost more than the rest of the item)."""

    def __init__(self, size: int, pointer_prefix: str) -> None:
        self.items: list[dict[str, Any] | None] = [None] * size
        self.prefix = pointer_prefix

    def reject(self, index: int, field_name: str, message: str, code: str) -> None:
        pointer = self.prefix.format(index=index) + (f"/{field_name}" if field_name else "")
        error = {"pointer": pointer, "location": "body", "message": message, "code": code}
        self.items[index] = {"index": index, "status": "rejected", "errors": [error]}

    def reject_invalid(self, index: int, exc: ValidationError) -> None:
        errors = []
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            _, pointer = pointer_for(("body", *error["loc"]))
            errors.append(
                {
                    "pointer": self.prefix.format(index=index) + pointer,
                    "location": "body",
                    "message": str(error["msg"]),
                    "code": str(error["type"]),
                }
            )
        self.items[index] = {"index": index, "status": "rejected", "errors": errors}

    def done(
        self, item: _Item, status: ItemStatus, event_id: uuid.UUID, contact: uuid.UUID
    ) -> None:
        self.items[item.index] = {
            "index": item.index,
            "status": status,
            "id": event_id,
            "contact_id": contact,
        }


async def ingest_batch(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    raw_events: Sequence[Any],
    *,
    may_use_reserved: bool,
) -> dict[str, Any]:
    """Validate each item on its own (bad ones are rejected, the rest land). Returns the
    `EventBatchOut` shape."""
    answers = _Answers(len(raw_events), "/events/{index}")
    valid: list[tuple[int, EventIn]] = []
    for index, raw in enumerate(raw_events):
        try:
            valid.append((index, EventIn.model_validate(raw)))
        except ValidationError as exc:
            answers.reject_invalid(index, exc)
    await _ingest(session, workspace_id, valid, answers, may_use_reserved=may_use_reserved)
    results = [item for item in answers.items if item is not None]
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for item in results:
        counts[item["status"]] += 1
    return {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": results,
    }


async def ingest_one(
    session: AsyncSession, workspace_id: uuid.UUID, event: EventIn, *, may_use_reserved: bool
) -> tuple[Event, bool]:
    """Store one event; returns it and whether it is new (False: the original of a resend)."""
    answers = _Answers(1, "")
    await _ingest(session, workspace_id, [(0, event)], answers, may_use_reserved=may_use_reserved)
    answer = answers.items[0]
    assert answer is not None
    if answer["status"] == "rejected":
        errors = [FieldError(**error) for error in answer["errors"]]
        raise Unprocessable(
            "The event was rejected: " + "; ".join(e.message for e in errors), errors=errors
        )
    stored = await EventRepository(session, workspace_id).get_or_404(answer["id"])
    return stored, answer["status"] == "accepted"


async def _ingest(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    events: list[tuple[int, EventIn]],
    answers: _Answers,
    *,
    may_use_reserved: bool,
) -> None:
    repo = EventRepository(session, workspace_id)
    now = utcnow()
    items = _checked(events, answers, now, may_use_reserved=may_use_reserved)
    if not items:
        return
    await _resolve_contacts(repo, items, answers, now)
    to_insert, repeats = _split_repeats([item for item in items if item.contact_id is not None])
    if not to_insert:
        return
    for item, event_id in zip(to_insert, new_ids(len(to_insert)), strict=True):
        item.event_id = event_id
    inserted = await repo.insert_events(_rows(to_insert, now), now)
    await _answer_stored(repo, to_insert, repeats, inserted, answers)
    new_events = [
        IngestedEvent(
            item.event_id, item.contact_id, item.event.type, item.event.occurred_at or now
        )
        for item in to_insert
        if item.event_id in inserted and item.contact_id is not None
    ]
    if not new_events:
        return
    latest: dict[uuid.UUID, datetime] = {}
    for event in new_events:
        if event.contact_id not in latest or latest[event.contact_id] < event.occurred_at:
            latest[event.contact_id] = event.occurred_at
    await repo.touch_last_activity(list(latest), list(latest.values()))
    await events_recorded.publish(session, workspace_id, new_events)


def _split_repeats(items: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """One row per client event id: a repeat inside the batch is a duplicate of its first."""
    seen: set[str] = set()
    to_insert: list[_Item] = []
    repeats: list[_Item] = []
    for item in items:
        key = item.event.event_id
        if key is not None and key in seen:
            repeats.append(item)
            continue
        if key is not None:
            seen.add(key)
        to_insert.append(item)
    return to_insert, repeats


async def _answer_stored(
    repo: EventRepository,
    to_insert: list[_Item],
    repeats: list[_Item],
    inserted: set[uuid.UUID],
    answers: _Answers,
) -> None:
    """Accepted items, and duplicates answered with their original (one query for all)."""
    by_key: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    missing: list[str] = []
    for item in to_insert:
        assert item.contact_id is not None
        key = item.event.event_id
        if item.event_id in inserted:
            answers.done(item, "accepted", item.event_id, item.contact_id)
            if key is not None:
                by_key[key] = (item.event_id, item.contact_id)
        elif key is not None:
            missing.append(key)
    if missing:
        by_key.update(await repo.originals(missing))
    for item in to_insert + repeats:
        if answers.items[item.index] is not None:
            continue
        assert item.event.event_id is not None
        original = by_key.get(item.event.event_id)
        if original is None:  # the original vanished meanwhile (erasure); a retry stores it
            answers.reject(
                item.index, "event_id", "conflicts with a concurrent change; retry", "conflict"
            )
        else:
            answers.done(item, "duplicate", original[0], original[1])


def _checked(
    events: list[tuple[int, EventIn]], answers: _Answers, now: datetime, *, may_use_reserved: bool
) -> list[_Item]:
    """Rules that need the caller or the clock; returns the items that pass."""
    horizon = now + FUTURE_TOLERANCE
    items: list[_Item] = []
    for index, event in events:
        if not may_use_reserved and event.type.startswith(RESERVED_PREFIX):
            answers.reject(
                index,
                "type",
                "`email.*` event types are reserved for Herald's own provider and tracking "
                "events; they need an `admin` or `events:admin` key",
                "reserved_type",
            )
            continue
        if event.occurred_at is not None and event.occurred_at > horizon:
            answers.reject(
                index,
                "occurred_at",
                f"is more than {int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes in the future",
                "future_timestamp",
            )
            continue
        key: ContactKey
        if event.contact_id is not None:
            key = ("id", event.contact_id)
        elif event.external_id is not None:
            key = ("external_id", event.external_id)
        else:
            assert event.email is not None
            email = normalize_email(event.email)
            if len(email) > MAX_EMAIL_LENGTH:  # lowercasing can lengthen it ("İ" -> "i̇")
                answers.reject(
                    index,
                    "email",
                    f"is longer than {MAX_EMAIL_LENGTH} characters once lowercased",
                    "string_too_long",
                )
                continue
            key = ("email", email)
        items.append(_Item(index, event, key))
    return items


async def _resolve_contacts(
    repo: EventRepository,
    items: list[_Item],
    answers: _Answers,
    now: datetime,
) -> None:
    """Set `contact_id` on every item, creating unknown contacts if the workspace allows;
    items whose contact cannot be resolved are rejected."""
    wanted: dict[str, set[Any]] = {"id": set(), "external_id": set(), "email": set()}
    for item in items:
        wanted[item.key[0]].add(item.key[1])
    found: dict[ContactKey, ContactRef] = {}

    def remember(refs: list[ContactRef]) -> None:
        for ref in refs:
            found["id", ref.id] = ref
            if ref.external_id is not None:
                found["external_id", ref.external_id] = ref
            if ref.email is not None:
                found["email", ref.email] = ref

    remember(
        await repo.find_contacts(
            list(wanted["id"]), list(wanted["external_id"]), list(wanted["email"])
        )
    )
    unknown = sorted({item.key for item in items if item.key[0] != "id" and item.key not in found})
    if unknown:
        settings = await get_settings(repo.session, repo.workspace_id)
        if settings.events.unknown_contacts == "create":
            external_ids = [value if kind == "external_id" else None for kind, value in unknown]
            emails = [value if kind == "email" else None for kind, value in unknown]
            remember(await repo.create_contacts(external_ids, emails, now))
            raced = [key for key in unknown if key not in found]
            if raced:  # created by a concurrent transaction since our first look
                remember(
                    await repo.find_contacts(
                        [],
                        [value for kind, value in raced if kind == "external_id"],
                        [value for kind, value in raced if kind == "email"],
                    )
                )

    for item in items:
        ref = found.get(item.key)
        kind, value = item.key
        field_name = "contact_id" if kind == "id" else kind
        if ref is None:
            if kind == "id":
                message, code = f"no contact with id {value} in this workspace", "unknown_contact"
            else:
                message = (
                    f"no contact with this {kind}; this workspace rejects events for unknown "
                    "contacts (settings.events.unknown_contacts)"
                )
                code = "unknown_contact"
            answers.reject(item.index, field_name, message, code)
        elif ref.erased:
            answers.reject(item.index, field_name, "the contact has been erased", "contact_erased")
        else:
            item.contact_id = ref.id


def _rows(items: list[_Item], now: datetime) -> EventRows:
    rows = EventRows([], [], [], [], [], [], [], [])
    for item in items:
        event = item.event
        assert item.contact_id is not None
        properties = event.properties
        rows.ids.append(item.event_id)
        rows.contact_ids.append(item.contact_id)
        rows.types.append(event.type)
        rows.properties.append(getattr(properties, "text", None) or _dump(properties))
        rows.revenues.append(_revenue(properties))
        rows.occurred_at.append(event.occurred_at or now)
        rows.sources.append(event.source)
        rows.client_event_ids.append(event.event_id)
    return rows


def _revenue(properties: dict[str, Any]) -> float | None:
    revenue = properties.get("revenue")
    return float(revenue) if revenue is not None else None


def _dump(properties: dict[str, Any]) -> str:
    return json.dumps(properties, ensure_ascii=False, separators=(",", ":"))


async def list_events(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams, filters: EventFilters
) -> PageResult[Event]:
    return await EventRepository(session, workspace_id).list_events(params, filters)


async def get_event(session: AsyncSession, workspace_id: uuid.UUID, event_id: uuid.UUID) -> Event:
    return await EventRepository(session, workspace_id).get_or_404(event_id)


async def add_unannounced_event(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    contact_id: uuid.UUID,
    event_type: str,
    properties: dict[str, Any],
    *,
    at: datetime,
    source: str,
) -> None:
    """Store one event as received at `at` and flush, telling nobody (no `events_recorded`:
    the caller wakes what it needs): for work that is rolled back, like the sequence
    simulator's scripted events. Its revenue is the `revenue` property, as ingestion reads it."""
    event = Event(
        id=new_id(),
        contact_id=contact_id,
        type=event_type,
        properties=properties,
        revenue=_revenue(properties),
        occurred_at=at,
        received_at=at,
        source=source,
    )
    EventRepository(session, workspace_id).add(event)
    await session.flush()
