"""Every metrics query: folding deltas and pending events, reading figures (stored or
recounted from raw rows), rewriting rollups.

Figures are *wide* rows: the delta key (workspace, campaign, sequence, step_key, variant,
channel, bucket) plus one column per metric (`app.metrics.sql.METRICS`). Three sources make
the current figures, exact at any moment: `metric_rollups` + the not-yet-folded
`metric_deltas` + the facts of events still queued in `metric_pending_events` (computed on
the fly with the same query the fold uses).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Numeric,
    Select,
    String,
    Table,
    Uuid,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Subquery

from app.channels.models import Message
from app.events.models import Event
from app.metrics.conversions_repository import conversions_query
from app.metrics.models import (
    COUNTERS,
    MetricDelta,
    MetricEventFact,
    MetricPendingEvent,
    MetricRollup,
)
from app.metrics.sql import DELTA_GROUP, METRICS, aggregate, enrollment_unpivot, message_unpivot
from app.segments.models import SegmentMembership

TRACKING_KINDS = {"email.opened": "open", "email.clicked": "click", "email.replied": "reply"}
FACT_METRIC = {"open": "opens", "click": "clicks", "reply": "replies", "conversion": "converted"}
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
FOLD_LOCK = 0x4D45_5452  # "METR": one fold (or recount --fix) at a time

Key = tuple[Any, ...]  # DELTA_GROUP values
Figures = dict[str, Decimal]


@dataclass(frozen=True)
class Scope:
    """What a recount covers: everything, one workspace, or one campaign of a workspace."""

    workspace_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _hour(column: Any) -> ColumnElement[datetime]:
    return func.date_trunc("hour", column, "UTC")


# --- facts: what an event counts for -------------------------------------------------------


def facts_select(
    event_filter: ColumnElement[bool], campaign_id: uuid.UUID | None = None
) -> Select[Any]:
    """Facts of the events matching `event_filter`, columns in `MetricEventFact` order:
    tracking events (open/click/reply of one campaign message, same contact) and conversions
    (app/metrics/conversions_repository.py)."""
    reference = Event.properties["message_id"].astext
    message_id = case((reference.op("~")(UUID_PATTERN), cast(reference, Message.id.type)))
    tracking_filters = [
        event_filter,
        Event.type.in_(list(TRACKING_KINDS)),
        Message.campaign_id.is_not(None),
    ]
    if campaign_id is not None:
        tracking_filters.append(Message.campaign_id == campaign_id)
    tracking = (
        select(
            Event.id.label("event_id"),
            Message.campaign_id.label("campaign_id"),
            case(TRACKING_KINDS, value=Event.type).label("kind"),
            Event.workspace_id.label("workspace_id"),
            Event.contact_id.label("contact_id"),
            Message.id.label("message_id"),
            Message.sequence_id.label("sequence_id"),
            Message.step_key.label("step_key"),
            func.coalesce(Message.variant, "").label("variant"),
            Message.channel.label("channel"),
            _hour(Event.occurred_at).label("bucket"),
            Event.occurred_at.label("occurred_at"),
            cast(null(), Numeric(18, 4)).label("revenue"),
        )
        .select_from(Event)
        .join(
            Message,
            and_(
                Message.id == message_id,
                Message.workspace_id == Event.workspace_id,
                Message.contact_id == Event.contact_id,
            ),
        )
        .where(*tracking_filters)
    )
    conversions = conversions_query(
        campaign_ids=None if campaign_id is None else [campaign_id], event_filter=event_filter
    ).subquery("conversion")
    converted = select(
        conversions.c.event_id,
        conversions.c.campaign_id,
        literal("conversion", String).label("kind"),
        conversions.c.workspace_id,
        conversions.c.contact_id,
        conversions.c.message_id,
        conversions.c.sequence_id,
        conversions.c.step_key,
        func.coalesce(conversions.c.variant, "").label("variant"),
        conversions.c.channel,
        _hour(conversions.c.occurred_at).label("bucket"),
        conversions.c.occurred_at,
        conversions.c.revenue,
    )
    return select(union_all(tracking, converted).subquery("facts"))


FACT_COLUMNS = (
    "event_id",
    "campaign_id",
    "kind",
    "workspace_id",
    "contact_id",
    "message_id",
    "sequence_id",
    "step_key",
    "variant",
    "channel",
    "bucket",
    "occurred_at",
    "revenue",
)


def _facts_wide(facts: Subquery | Any) -> Select[Any]:
    """Facts (table or subquery) as wide rows (one fact -> its counter and revenue)."""
    columns: list[Any] = [facts.c[c] for c in DELTA_GROUP]
    for metric in COUNTERS:
        kinds = [kind for kind, name in FACT_METRIC.items() if name == metric]
        if kinds:
            columns.append(case((facts.c.kind == kinds[0], 1), else_=0).label(metric))
        else:
            columns.append(literal(0).label(metric))
    revenue = case((facts.c.kind == "conversion", func.coalesce(facts.c.revenue, 0)), else_=0)
    columns.append(revenue.label("revenue"))
    return select(*columns)


# --- fold ----------------------------------------------------------------------------------


async def try_fold_lock(session: AsyncSession) -> bool:
    result = await session.execute(select(func.pg_try_advisory_xact_lock(FOLD_LOCK)))
    return bool(result.scalar_one())


@asynccontextmanager
async def holding_fold_lock(connection: AsyncConnection) -> AsyncIterator[None]:
    """The fold lock, held on `connection` (session-level, so on a connection of its own)
    for the block: the fold skips its ticks until it is released."""
    await connection.execute(select(func.pg_advisory_lock(FOLD_LOCK)))
    try:
        yield
    finally:
        await connection.execute(select(func.pg_advisory_unlock(FOLD_LOCK)))


async def take_pending(session: AsyncSession, cutoff: datetime, limit: int) -> list[uuid.UUID]:
    """Remove (and return) queued events received at or before `cutoff`, oldest first."""
    due = (
        select(MetricPendingEvent.event_id)
        .where(MetricPendingEvent.received_at <= cutoff)
        .order_by(MetricPendingEvent.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(MetricPendingEvent)
        .where(MetricPendingEvent.event_id.in_(due.scalar_subquery()))
        .returning(MetricPendingEvent.event_id)
    )
    return list(result.scalars())


def event_ids_filter(ids: Sequence[uuid.UUID]) -> ColumnElement[bool]:
    """`events.id = ANY(:ids)`: one array parameter, however many ids."""
    return Event.id == any_(literal(list(ids), ARRAY(Uuid())))


async def insert_facts(
    session: AsyncSession, event_filter: ColumnElement[bool], campaign_id: uuid.UUID | None = None
) -> None:
    """Record the facts of these events (the facts trigger appends their deltas)."""
    table = _table(MetricEventFact)
    statement = (
        pg_insert(table)
        .from_select(list(FACT_COLUMNS), facts_select(event_filter, campaign_id))
        .on_conflict_do_nothing()
    )
    await session.execute(statement)


def _fold_sql() -> str:
    keys = ", ".join(DELTA_GROUP)
    sums = ", ".join(f"sum({m}) AS {m}" for m in METRICS)
    updates = ", ".join(f"{m} = metric_rollups.{m} + excluded.{m}" for m in METRICS)
    return (
        "WITH d AS (DELETE FROM metric_deltas WHERE id IN"
        " (SELECT id FROM metric_deltas ORDER BY id LIMIT :limit) RETURNING *),"
        f" s AS (SELECT {keys}, {sums} FROM d GROUP BY {keys}),"
        f" ins AS (INSERT INTO metric_rollups ({keys}, {', '.join(METRICS)})"
        f" SELECT {keys}, {', '.join(METRICS)} FROM s"
        f" ON CONFLICT ({keys}) DO UPDATE SET {updates}"
        " RETURNING workspace_id, campaign_id)"
        " SELECT (SELECT count(*) FROM d) AS folded, i.workspace_id, i.campaign_id"
        " FROM (SELECT DISTINCT workspace_id, campaign_id FROM ins) i"
    )


FOLD_SQL = text(_fold_sql())


async def fold_deltas(
    session: AsyncSession, limit: int
) -> tuple[int, set[tuple[uuid.UUID, uuid.UUID]]]:
    """Sum up to `limit` deltas into rollups and delete them: (deltas folded, campaigns)."""
    rows = (await session.execute(FOLD_SQL, {"limit": limit})).all()
    folded = int(rows[0].folded) if rows else 0
    return folded, {(row.workspace_id, row.campaign_id) for row in rows}


# --- stored figures (what reads serve) ------------------------------------------------------


def _table_wide(model: type[MetricRollup] | type[MetricDelta], scope: Scope) -> Select[Any]:
    table = _table(model)
    statement = select(*(table.c[c] for c in (*DELTA_GROUP, *METRICS)))
    if scope.workspace_id is not None:
        statement = statement.where(table.c.workspace_id == scope.workspace_id)
    if scope.campaign_id is not None:
        statement = statement.where(table.c.campaign_id == scope.campaign_id)
    return statement


async def pending_ids(session: AsyncSession, scope: Scope) -> list[uuid.UUID]:
    """Queued events of the scope's workspace (a short list while the fold keeps up). Read
    first and passed as an array, so the facts query starts from them, not from `events`."""
    statement = select(MetricPendingEvent.event_id)
    if scope.workspace_id is not None:
        statement = statement.where(MetricPendingEvent.workspace_id == scope.workspace_id)
    return list((await session.execute(statement)).scalars())


def _pending_wide(
    scope: Scope, pending: Sequence[uuid.UUID], contacts: Any | None = None
) -> Select[Any] | None:
    """Facts of queued events, computed now, minus any already stored (a fold may have
    committed since `pending` was read)."""
    if not pending:
        return None
    facts = facts_select(event_ids_filter(pending), scope.campaign_id).subquery("pending")
    stored = MetricEventFact
    wide = _facts_wide(facts).where(
        ~exists().where(
            stored.event_id == facts.c.event_id,
            stored.campaign_id == facts.c.campaign_id,
            stored.kind == facts.c.kind,
        )
    )
    if contacts is not None:
        wide = wide.where(facts.c.contact_id.in_(contacts))
    return wide


def stored_wide(scope: Scope, pending: Sequence[uuid.UUID]) -> Subquery:
    """Current figures: rollups + unfolded deltas + facts of queued events."""
    parts = [_table_wide(MetricRollup, scope), _table_wide(MetricDelta, scope)]
    queued = _pending_wide(scope, pending)
    if queued is not None:
        parts.append(queued)
    return union_all(*parts).subquery("stored")


def _scope_where(alias: str, scope: Scope, contacts_sql: str | None = None) -> str:
    conditions = ["TRUE"]
    if scope.workspace_id is not None:
        conditions.append(f"{alias}.workspace_id = :workspace_id")
    if scope.campaign_id is not None:
        conditions.append(f"{alias}.campaign_id = :campaign_id")
    if contacts_sql is not None:
        conditions.append(f"{alias}.contact_id IN ({contacts_sql})")
    return " AND ".join(conditions)


def _raw_rows(
    scope: Scope, contacts_sql: str | None = None, extra: dict[str, Any] | None = None
) -> Subquery:
    """Messages and enrollments, unpivoted by the triggers' own definitions."""
    messages = message_unpivot(
        f"SELECT 1 AS sign, m.* FROM messages m WHERE {_scope_where('m', scope, contacts_sql)}"
    )
    enrollments = enrollment_unpivot(
        f"SELECT 1 AS sign, e.* FROM enrollments e WHERE {_scope_where('e', scope, contacts_sql)}"
    )
    sql = aggregate(f"{messages} UNION ALL {enrollments}", DELTA_GROUP)
    params: dict[str, Any] = dict(extra or {})
    if scope.workspace_id is not None:
        params["workspace_id"] = scope.workspace_id
    if scope.campaign_id is not None:
        params["campaign_id"] = scope.campaign_id
    columns = [*(_table(MetricRollup).c[c] for c in (*DELTA_GROUP, *METRICS))]
    return text(sql).bindparams(**params).columns(*columns).subquery("raw")


def _raw_select(raw: Subquery) -> Select[Any]:
    return select(*(raw.c[c] for c in (*DELTA_GROUP, *METRICS)))


def _events_filter(scope: Scope) -> ColumnElement[bool]:
    if scope.workspace_id is None:
        return Event.id.is_not(None)
    return Event.workspace_id == scope.workspace_id


def recount_wide(scope: Scope) -> Subquery:
    """Figures recomputed from raw rows only: messages, enrollments, events. One exception:
    tracking events whose properties were scrubbed by an erasure no longer name their
    message, so their stored facts stand in for them."""
    facts = facts_select(_events_filter(scope), scope.campaign_id).subquery("raw_facts")
    table = _table(MetricEventFact)
    scrubbed = _facts_wide(table).where(
        table.c.kind.in_(["open", "click", "reply"]),
        exists().where(
            Event.id == table.c.event_id,
            ~Event.properties.has_key("message_id"),
        ),
    )
    if scope.workspace_id is not None:
        scrubbed = scrubbed.where(table.c.workspace_id == scope.workspace_id)
    if scope.campaign_id is not None:
        scrubbed = scrubbed.where(table.c.campaign_id == scope.campaign_id)
    return union_all(_raw_select(_raw_rows(scope)), _facts_wide(facts), scrubbed).subquery(
        "recount"
    )


def segment_wide(scope: Scope, segment_id: uuid.UUID, pending: Sequence[uuid.UUID]) -> Subquery:
    """Current figures of the contacts now in a segment (raw messages and enrollments, stored
    and queued facts): the segment breakdown is computed at read time."""
    members_sql = (
        "SELECT sm.contact_id FROM segment_memberships sm"
        " WHERE sm.segment_id = :segment_id AND sm.workspace_id = :workspace_id"
    )
    raw = _raw_rows(scope, members_sql, {"segment_id": segment_id})
    raw_select = select(*(raw.c[c] for c in (*DELTA_GROUP, *METRICS)))
    members_core = select(SegmentMembership.contact_id).where(
        SegmentMembership.segment_id == segment_id,
        SegmentMembership.workspace_id == scope.workspace_id,
    )
    table = _table(MetricEventFact)
    stored_facts = _facts_wide(table).where(
        table.c.workspace_id == scope.workspace_id,
        table.c.campaign_id == scope.campaign_id,
        table.c.contact_id.in_(members_core),
    )
    parts = [raw_select, stored_facts]
    queued = _pending_wide(scope, pending, contacts=members_core)
    if queued is not None:
        parts.append(queued)
    return union_all(*parts).subquery("segment")


async def figures(
    session: AsyncSession,
    wide: Subquery,
    group: Sequence[ColumnElement[Any]],
    params: dict[str, Any] | None = None,
    where: Sequence[ColumnElement[bool]] = (),
) -> list[tuple[tuple[Any, ...], Figures]]:
    """Sum wide rows by `group` (expressions over `wide.c`)."""
    statement = (
        select(*group, *(func.coalesce(func.sum(wide.c[m]), 0).label(m) for m in METRICS))
        .where(*where)
        .group_by(*group)
    )
    result = await session.execute(statement, params or {})
    size = len(group)
    return [
        (tuple(row[:size]), {m: Decimal(row[size + i]) for i, m in enumerate(METRICS)})
        for row in result.all()
    ]


# --- rewriting (recount --fix) --------------------------------------------------------------


async def rebuild_facts(session: AsyncSession, scope: Scope) -> None:
    facts = _table(MetricEventFact)
    statement = delete(facts)
    if scope.workspace_id is not None:
        statement = statement.where(facts.c.workspace_id == scope.workspace_id)
    if scope.campaign_id is not None:
        statement = statement.where(facts.c.campaign_id == scope.campaign_id)
    await session.execute(statement)
    if scope.campaign_id is None:
        pending = delete(MetricPendingEvent)
        if scope.workspace_id is not None:
            pending = pending.where(MetricPendingEvent.workspace_id == scope.workspace_id)
        await session.execute(pending)
    await insert_facts(session, _events_filter(scope), scope.campaign_id)


async def replace_rollups(session: AsyncSession, scope: Scope, rows: dict[Key, Figures]) -> None:
    for model in (MetricDelta, MetricRollup):
        table = _table(model)
        statement = delete(table)
        if scope.workspace_id is not None:
            statement = statement.where(table.c.workspace_id == scope.workspace_id)
        if scope.campaign_id is not None:
            statement = statement.where(table.c.campaign_id == scope.campaign_id)
        await session.execute(statement)
    values = [
        {**dict(zip(DELTA_GROUP, key, strict=True)), **figures} for key, figures in rows.items()
    ]
    for start in range(0, len(values), 1000):
        await session.execute(insert(MetricRollup), values[start : start + 1000])


# --- read signature (app/metrics/cache.py) ---------------------------------------------------

READ_STATE_SQL = (
    text(
        "SELECT c.version, c.goal, c.timezone, coalesce(c.launched_at, c.created_at) AS origin,"
        " ARRAY(SELECT p.event_id FROM metric_pending_events p WHERE p.workspace_id = :ws)"
        "  AS pending,"
        " r.n AS rollups, r.newest AS rollups_newest, d.n AS deltas, d.newest AS deltas_newest"
        " FROM campaigns c,"
        " (SELECT count(*) AS n, max(xmin::text::bigint) AS newest FROM metric_rollups"
        "  WHERE workspace_id = :ws AND campaign_id = :campaign) r,"
        " (SELECT count(*) AS n, max(id) AS newest FROM metric_deltas"
        "  WHERE workspace_id = :ws AND campaign_id = :campaign) d"
        " WHERE c.workspace_id = :ws AND c.id = :campaign"
    )
    .bindparams(bindparam("ws", type_=Uuid()), bindparam("campaign", type_=Uuid()))
    .columns(goal=JSONB(), pending=ARRAY(Uuid()), origin=DateTime(timezone=True))
)


@dataclass(frozen=True)
class ReadState:
    """What a campaign read depends on, in one statement: the campaign fields that shape the
    figures, the workspace's queued event ids, and the count and newest writer (`xmin`) of
    the campaign's rollup rows and the count and newest id of its deltas."""

    version: int
    goal: Any
    timezone: str
    origin: datetime  # launch, else creation: where a default range starts
    pending: list[uuid.UUID]
    stored: tuple[Any, ...]


async def read_state(session: AsyncSession, scope: Scope) -> ReadState | None:
    """None: no such campaign in the workspace."""
    row = (
        await session.execute(
            READ_STATE_SQL, {"ws": scope.workspace_id, "campaign": scope.campaign_id}
        )
    ).first()
    if row is None:
        return None
    return ReadState(
        version=row.version,
        goal=row.goal,
        timezone=row.timezone or "UTC",
        origin=row.origin,
        pending=list(row.pending),
        stored=(row.rollups, row.rollups_newest, row.deltas, row.deltas_newest),
    )
