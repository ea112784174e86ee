"""Emitting webhook events: the outbox write, in the caller's transaction.

Every domain calls `emit` / `emit_many` / `emit_lazy` / `emit_from_query` in the same
session (and so the same transaction) as the change the event describes: a rolled-back
change emits nothing, a committed one is always delivered. Only events some enabled
endpoint subscribes to are stored, with one delivery row per subscribed endpoint, and the
endpoints' delivery jobs are enqueued after the commit. A workspace without endpoints pays
one indexed query per call (and nothing at all when a call has nothing to emit).

- `emit` / `emit_many`: payload models built by the caller.
- `emit_lazy`: the payloads are built only when an endpoint wants one of the types (hot
  paths: the engine, delivery), so a workspace without endpoints never builds them.
- `emit_from_query`: set-wise, for bulk changes (a launch enrolling a million contacts, a
  segment refresh): the events and deliveries are inserted by one INSERT ... SELECT from
  the caller's query; ids are UUIDv7 made in SQL (`sql_uuid7`), like the enrollments of a
  launch, but stamped from the wall clock like `new_id()` (see `emit_from_query`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    String,
    Uuid,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.ids import new_id, sql_uuid7
from app.core.jobs import enqueue
from app.outbox import repository
from app.outbox.catalogue import EventData, envelope, patterns_matching
from app.outbox.models import WebhookDelivery, WebhookEvent

DELIVER_JOB = "deliver_webhooks"
Subscribers = dict[uuid.UUID, list[tuple[uuid.UUID, list[str]]]]
Data = TypeVar("Data", bound=EventData)


@dataclass(frozen=True)
class Emission:
    workspace_id: uuid.UUID
    data: EventData
    occurred_at: datetime | None = None  # defaults to now (the one clock)


async def emit(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    data: EventData,
    *,
    occurred_at: datetime | None = None,
) -> int:
    """Emit one event; returns how many endpoints will receive it."""
    return await emit_many(session, [Emission(workspace_id, data, occurred_at)])


async def emit_many(session: AsyncSession, emissions: Sequence[Emission]) -> int:
    """Emit events set-wise (one query for the subscriptions, two inserts); returns the
    number of deliveries created."""
    if not emissions:
        return 0
    subscribers = await repository.subscribed_endpoints(
        session, {e.workspace_id for e in emissions}
    )
    return await _write(session, emissions, subscribers)


async def emit_lazy(
    session: AsyncSession,
    workspace_ids: Collection[uuid.UUID],
    types: Collection[str],
    build: Callable[[], Awaitable[Sequence[Emission]]],
) -> int:
    """`emit_many` for hot paths: `build` runs only when an enabled endpoint of one of
    these workspaces subscribes to one of `types`. No workspaces or no types: no query."""
    if not workspace_ids or not types:
        return 0
    subscribers = await repository.subscribed_endpoints(session, set(workspace_ids))
    if not subscribers:
        return 0
    wanted = {pattern for kind in types for pattern in patterns_matching(kind)}
    if not any(
        wanted.intersection(filters)
        for endpoints in subscribers.values()
        for _, filters in endpoints
    ):
        return 0
    return await _write(session, await build(), subscribers)


async def subscribers_of(
    session: AsyncSession, workspace_id: uuid.UUID, event_type: str
) -> list[uuid.UUID]:
    """The enabled endpoints of the workspace that want `event_type` (one indexed query)."""
    return (await subscribers_by_type(session, workspace_id, [event_type]))[event_type]


async def subscribers_by_type(
    session: AsyncSession, workspace_id: uuid.UUID, event_types: Collection[str]
) -> dict[str, list[uuid.UUID]]:
    """`subscribers_of` for several types in one query: type -> endpoint ids."""
    subscribers = await repository.subscribed_endpoints(session, {workspace_id})
    endpoints = subscribers.get(workspace_id, [])
    found: dict[str, list[uuid.UUID]] = {}
    for event_type in event_types:
        wanted = set(patterns_matching(event_type))
        found[event_type] = sorted(
            (endpoint_id for endpoint_id, filters in endpoints if wanted.intersection(filters)),
            key=str,
        )
    return found


async def emit_from_query(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    event: type[EventData],
    rows: Select[Any],
    *,
    endpoints: Sequence[uuid.UUID] | None = None,
) -> int:
    """Emit one `event` per row of `rows` set-wise: one statement inserts the events and
    their deliveries (`rows` yields `(data jsonb, occurred_at)`; the data must match the
    catalogue model, which the caller's SQL builds). Returns the number of events.

    With no subscribed endpoint nothing is added and `rows` is not even run. `endpoints`
    (from `subscribers_of`) skips the lookup: a caller whose `rows` contains a
    data-modifying CTE (the INSERT it emits for) checks first and runs its plain statement
    when nobody listens, because then this statement is not run."""
    targets = (
        list(endpoints)
        if endpoints is not None
        else await subscribers_of(session, workspace_id, event.TYPE)
    )
    if not targets:
        return 0
    now = utcnow()
    # Ids from the wall clock, like `new_id()`: events emitted row by row and set-wise in
    # one transaction stay in emission order by id (to the millisecond), whatever the
    # app clock says (tests freeze it).
    stamp = datetime.now(UTC)
    source = rows.cte("emitted_rows")
    data, occurred_at = list(source.c)[:2]
    payload = func.jsonb_build_object(
        "type",
        literal(event.TYPE, String),
        "version",
        literal(event.VERSION, Integer),
        "timestamp",
        _rfc3339(occurred_at),
        "data",
        data,
    )
    events = (
        insert(WebhookEvent)
        .from_select(
            ["id", "workspace_id", "type", "payload", "occurred_at"],
            select(
                sql_uuid7(stamp),
                literal(workspace_id, Uuid),
                literal(event.TYPE, String),
                payload,
                occurred_at,
            ).select_from(source),
        )
        .returning(WebhookEvent.id)
        .cte("emitted_events")
    )
    endpoint = (
        func.unnest(cast(literal(targets, ARRAY(Uuid)), ARRAY(Uuid)))
        .table_valued("endpoint_id")
        .render_derived(name="targets")
    )
    at = literal(now, DateTime(timezone=True))
    deliveries = (
        insert(WebhookDelivery)
        .from_select(
            [
                "id",
                "workspace_id",
                "endpoint_id",
                "event_id",
                "event_type",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
                "updated_at",
            ],
            select(
                sql_uuid7(stamp),
                literal(workspace_id, Uuid),
                endpoint.c.endpoint_id,
                events.c.id,
                literal(event.TYPE, String),
                literal("pending", String),
                literal(0, Integer),
                at,
                at,
                at,
            ).select_from(events.join(endpoint, true())),
        )
        .returning(WebhookDelivery.id)
        .cte("emitted_deliveries")
    )
    statement = select(
        select(func.count()).select_from(events).scalar_subquery(),
        select(func.count()).select_from(deliveries).scalar_subquery(),
    )
    emitted, delivered = (await session.execute(statement)).one()
    if delivered:
        for endpoint_id in targets:
            enqueue_delivery(session, endpoint_id)
    return int(emitted)


def enqueue_delivery(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    """Wake the endpoint's delivery job after the commit (one job per endpoint at a time;
    if it is already running, once more after it, see `again_if_taken`)."""
    enqueue(session, DELIVER_JOB, str(endpoint_id), job_key=(endpoint_id,), again_if_taken=True)


def message_data(event: type[Data], message: Any, **extra: Any) -> Data:
    """A `message.*` payload from a message row: a `Message`, a RETURNING row or a dict of
    the message's columns."""

    def field(name: str) -> Any:
        return message[name] if isinstance(message, dict) else getattr(message, name)

    return event.model_validate(
        {
            "message_id": field("id"),
            **{
                name: field(name)
                for name in (
                    "contact_id",
                    "enrollment_id",
                    "sequence_id",
                    "campaign_id",
                    "step_key",
                    "channel",
                    "variant",
                )
            },
            **extra,
        }
    )


# -- internals ------------------------------------------------------------------------------


async def _write(
    session: AsyncSession, emissions: Sequence[Emission], subscribers: Subscribers
) -> int:
    if not emissions or not subscribers:
        return 0
    now = utcnow()
    events: list[dict[str, object]] = []
    deliveries: list[dict[str, object]] = []
    for emission in emissions:
        wanted = set(patterns_matching(emission.data.TYPE))
        targets = [
            endpoint_id
            for endpoint_id, filters in subscribers.get(emission.workspace_id, [])
            if wanted.intersection(filters)
        ]
        if not targets:
            continue
        event_id = new_id()
        occurred_at = emission.occurred_at or now
        events.append(
            {
                "id": event_id,
                "workspace_id": emission.workspace_id,
                "type": emission.data.TYPE,
                "payload": envelope(emission.data, occurred_at),
                "occurred_at": occurred_at,
            }
        )
        deliveries.extend(
            {
                "id": new_id(),
                "workspace_id": emission.workspace_id,
                "endpoint_id": endpoint_id,
                "event_id": event_id,
                "event_type": emission.data.TYPE,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for endpoint_id in targets
        )
    await repository.insert_outbox(session, events, deliveries)
    for endpoint_id in sorted({d["endpoint_id"] for d in deliveries}, key=str):
        enqueue_delivery(session, endpoint_id)  # type: ignore[arg-type]
    return len(deliveries)


def _rfc3339(at: Any) -> Any:
    """`envelope()`'s timestamp format in SQL: UTC, `Z`, microseconds only when non-zero."""
    utc = func.timezone("UTC", at)
    return case(
        (
            func.to_char(utc, "US") == "000000",
            func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        ),
        else_=func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    )
