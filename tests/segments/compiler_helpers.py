"""Insert audience rows with Core and evaluate compiled rules, for the compiler tests."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.contacts.models import Contact, ContactConsent
from app.core.ids import new_id
from app.events.models import Event
from app.segments.compiler import CompileContext, SegmentRef, count_statement, member_ids
from app.segments.models import Segment, SegmentMembership
from app.segments.rules import parse_rule

Factory = async_sessionmaker[AsyncSession]


async def insert_rows(
    factory: Factory,
    *,
    contacts: Sequence[Mapping[str, Any]] = (),
    events: Sequence[Mapping[str, Any]] = (),
    consents: Sequence[Mapping[str, Any]] = (),
    segments: Sequence[Mapping[str, Any]] = (),
    memberships: Sequence[Mapping[str, Any]] = (),
) -> None:
    async with factory() as session, session.begin():
        for model, rows in (
            (Contact, contacts),
            (Segment, segments),
            (SegmentMembership, memberships),
            (Event, events),
            (ContactConsent, consents),
        ):
            if rows:
                await session.execute(insert(model), [dict(row) for row in rows])


def contact_row(workspace_id: uuid.UUID, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": new_id(),
        "workspace_id": workspace_id,
        "email": None,
        "external_id": None,
        "phone": None,
        "attributes": {},
        "timezone": None,
        "locale": None,
        "last_activity_at": None,
        "erased_at": None,
    }
    row.update(values)
    if row["email"] is None and row["external_id"] is None:
        row["external_id"] = f"x-{row['id']}"
    return row


def event_row(
    workspace_id: uuid.UUID, contact_id: uuid.UUID, type_: str, at: datetime, **props: Any
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "workspace_id": workspace_id,
        "contact_id": contact_id,
        "type": type_,
        "properties": props,
        # Like ingestion: a numeric `revenue` property is also stored in the typed column.
        "revenue": _revenue(props.get("revenue")),
        "occurred_at": at,
        "received_at": at,
    }


def _revenue(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Decimal(str(float(value)))


async def evaluate(
    factory: Factory,
    rule_json: object,
    workspace_id: uuid.UUID,
    now: datetime,
    segments: Mapping[uuid.UUID, SegmentRef] | None = None,
) -> set[uuid.UUID]:
    """Ids matching the rule; also checks that `count_statement` agrees with `member_ids`,
    and that the batch form (`among=`, evaluated over a subquery of those contacts) answers
    exactly the matching ids among every other contact of the workspace (erased ones and
    an unknown id included)."""
    rule = parse_rule(rule_json)
    ctx = CompileContext(workspace_id=workspace_id, now=now, segments=segments or {})
    async with factory() as session:
        ids = set((await session.execute(member_ids(rule, ctx))).scalars())
        count = (await session.execute(count_statement(rule, ctx))).scalar_one()
        everyone = (
            await session.execute(
                select(Contact.id).where(Contact.workspace_id == workspace_id).order_by(Contact.id)
            )
        ).scalars()
        batch = {*list(everyone)[::2], new_id()}
        in_batch = set((await session.execute(member_ids(rule, ctx, among=batch))).scalars())
    assert count == len(ids)
    assert in_batch == ids & batch
    return ids
