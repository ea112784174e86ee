"""Metrics services: the fold, campaign stats and time series, the recount. Never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic_core import to_json
from sqlalchemy import ColumnElement, func, literal
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Subquery

from app.campaigns import service as campaigns
from app.core.clock import utcnow
from app.core.errors import NotFound, Unprocessable
from app.metrics import cache
from app.metrics import repository as repo
from app.metrics.repository import Key, Scope
from app.metrics.schemas import (
    Bucket,
    CampaignStats,
    CampaignTimeseries,
    Figures,
    GroupBy,
    GroupFigures,
    SeriesGroupBy,
)
from app.metrics.sql import DELTA_GROUP, METRICS

if TYPE_CHECKING:
    from app.campaigns.models import Campaign
    from app.config import MetricsSettings, Settings

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "step": ("step_key",),
    "variant": ("step_key", "variant"),
    "channel": ("channel",),
}
SERIES_LABELS = ("step_key", "variant", "channel")  # a Series' label fields, null when unused


def metrics_settings(settings: Settings) -> MetricsSettings:
    return settings.metrics


# --- fold ----------------------------------------------------------------------------------


@dataclass
class FoldResult:
    events: int = 0
    deltas: int = 0
    campaigns: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)
    skipped: bool = False


async def fold(session: AsyncSession, config: MetricsSettings, now: datetime) -> FoldResult:
    """Freeze the facts of queued events that have settled, then sum every delta into the
    rollups and delete it. One transaction (the caller's); one fold at a time."""
    result = FoldResult()
    if not await repo.try_fold_lock(session):
        result.skipped = True
        return result
    cutoff = now - timedelta(seconds=config.settle_seconds)
    while True:
        ids = await repo.take_pending(session, cutoff, config.pending_batch)
        if ids:
            await repo.insert_facts(session, repo.event_ids_filter(ids))
        result.events += len(ids)
        if len(ids) < config.pending_batch:
            break
    while True:
        folded, changed = await repo.fold_deltas(session, config.fold_batch)
        result.deltas += folded
        result.campaigns |= changed
        if folded < config.fold_batch:
            break
    return result


# --- figures -------------------------------------------------------------------------------


def _ratio(numerator: Decimal, denominator: Decimal) -> float | None:
    return None if denominator == 0 else float(numerator / denominator)


def to_figures(values: dict[str, Decimal], *, campaign_level: bool = True) -> dict[str, Any]:
    """The fields of a `Figures` as plain JSON-ready values (nested objects as dicts): the
    models validate them; the time-series JSON path serialises them directly."""
    n = {m: values.get(m, Decimal(0)) for m in METRICS}
    reached = n["sent"] - n["bounced"]
    rates = {
        "open": _ratio(n["opened"], reached),
        "click": _ratio(n["clicked"], reached),
        "click_to_open": _ratio(n["clicked"], n["opened"]),
        "reply": _ratio(n["replied"], reached),
        "conversion": _ratio(n["converted"], n["enrolled"] if campaign_level else n["sent"]),
        "bounce": _ratio(n["bounced"], n["sent"]),
        "unsubscribe": _ratio(n["unsubscribed"], n["enrolled"]) if campaign_level else None,
    }
    counts = {
        m: int(n[m])
        for m in (
            "enrolled",
            "completed",
            "exited",
            "unsubscribed",
            "sent",
            "delivered",
            "bounced",
            "failed",
            "unknown",
            "converted",
        )
    }
    return {
        **counts,
        "opened": {"unique": int(n["opened"]), "total": int(n["opens"])},
        "clicked": {"unique": int(n["clicked"]), "total": int(n["clicks"])},
        "replied": {"unique": int(n["replied"]), "total": int(n["replies"])},
        "revenue": n["revenue"],
        "rates": rates,
    }


async def _totals(session: AsyncSession, wide: Subquery) -> dict[str, Decimal]:
    rows = await repo.figures(session, wide, [])
    return rows[0][1] if rows else {}


async def require_campaign(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID
) -> None:
    """404 unless the campaign exists in the workspace."""
    await campaigns.get_campaign(session, workspace_id, campaign_id)


async def campaign_totals(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID
) -> Figures:
    scope = Scope(workspace_id, campaign_id)
    wide = repo.stored_wide(scope, await repo.pending_ids(session, scope))
    return Figures(**to_figures(await _totals(session, wide)))


async def campaign_stats(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    group_by: GroupBy | None = None,
) -> CampaignStats:
    campaign = await campaigns.get_campaign(session, workspace_id, campaign_id)
    scope = Scope(workspace_id, campaign.id)
    return await _stats(session, campaign, scope, await repo.pending_ids(session, scope), group_by)


async def campaign_stats_json(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    group_by: GroupBy | None = None,
) -> bytes:
    """`campaign_stats` as JSON, served from the exact read cache (app/metrics/cache.py)
    while nothing it depends on changed: a hit costs one statement. The segment breakdown is
    never cached."""
    scope = Scope(workspace_id, campaign_id)
    state = await _read_state(session, scope)
    signature = None if group_by == "segment" else _signature(state)

    async def compute() -> CampaignStats:
        campaign = await campaigns.get_campaign(session, workspace_id, campaign_id)
        return await _stats(session, campaign, scope, state.pending, group_by)

    if signature is None:
        stats = await compute()
    else:
        key = ("stats", workspace_id, campaign_id, group_by)
        cached = await cache.responses.get_or_compute(key, signature, compute)
        stats = cached.model_copy(update={"as_of": utcnow()})
    return stats.model_dump_json(by_alias=True).encode()


async def _read_state(session: AsyncSession, scope: Scope) -> repo.ReadState:
    state = await repo.read_state(session, scope)
    if state is None:
        raise NotFound(f"No campaign with id {scope.campaign_id}.")
    return state


def _signature(state: repo.ReadState) -> tuple[Any, ...] | None:
    """What a campaign's figures depend on (app/metrics/cache.py); None: don't cache."""
    if len(state.pending) > cache.MAX_PENDING:
        return None
    return (
        state.version,
        repr(state.goal),
        state.timezone,
        state.stored,
        tuple(sorted(state.pending)),
    )


async def _stats(
    session: AsyncSession,
    campaign: Campaign,
    scope: Scope,
    pending: Sequence[uuid.UUID],
    group_by: GroupBy | None,
) -> CampaignStats:
    wide = repo.stored_wide(scope, pending)
    totals = Figures(**to_figures(await _totals(session, wide)))
    groups: list[GroupFigures] | None = None
    if group_by == "segment":
        groups = []
        for raw_segment in campaign.include_segments or []:
            segment_id = uuid.UUID(str(raw_segment))
            values = await _totals(session, repo.segment_wide(scope, segment_id, pending))
            groups.append(GroupFigures(segment_id=segment_id, **to_figures(values)))
    elif group_by is not None:
        names = GROUP_COLUMNS[group_by]
        rows = await repo.figures(session, wide, [wide.c[name] for name in names])
        groups = []
        for key, values in sorted(rows, key=lambda row: tuple(str(k) for k in row[0])):
            labels: dict[str, Any] = dict(zip(names, key, strict=True))
            message_row = any(value != "" for value in key)
            if not message_row:  # enrollment rows carry no step, variant or channel
                labels = dict.fromkeys(names)
            groups.append(GroupFigures(**labels, **to_figures(values, campaign_level=False)))
    return CampaignStats(
        campaign_id=campaign.id, as_of=utcnow(), totals=totals, group_by=group_by, groups=groups
    )


# --- time series ---------------------------------------------------------------------------


def _bucket_starts(
    bucket: Bucket, zone: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    starts: list[datetime] = []
    if bucket == "hour":
        current = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while current < end:
            starts.append(current)
            current += timedelta(hours=1)
        return starts
    day: date = start.astimezone(zone).date()
    while True:
        current = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
        if current >= end:
            return starts
        starts.append(current)
        day += timedelta(days=1)


def _bucket_floor(bucket: Bucket, zone: ZoneInfo, moment: datetime) -> datetime:
    """The start of the bucket holding `moment` (a UTC hour; a midnight in `zone`)."""
    if bucket == "hour":
        return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    day = moment.astimezone(zone).date()
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _bucket_end(bucket: Bucket, zone: ZoneInfo, start: datetime) -> datetime:
    if bucket == "hour":
        return start + timedelta(hours=1)
    day = start.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


async def campaign_timeseries(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    config: MetricsSettings,
    *,
    bucket: Bucket = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: SeriesGroupBy | None = None,
) -> CampaignTimeseries:
    """Figures per hour (UTC hours) or per day (midnight to midnight in the campaign's
    timezone), for every bucket whose start lies in [from, to), empty buckets included."""
    campaign = await campaigns.get_campaign(session, workspace_id, campaign_id)
    origin = campaign.launched_at or campaign.created_at
    plan = _plan(campaign.timezone, origin, config, bucket=bucket, start=start, end=end)
    scope = Scope(workspace_id, campaign.id)
    document = await _series(session, scope, plan, await repo.pending_ids(session, scope), group_by)
    return CampaignTimeseries.model_validate(document)


async def campaign_timeseries_json(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    config: MetricsSettings,
    *,
    bucket: Bucket = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: SeriesGroupBy | None = None,
) -> bytes:
    """`campaign_timeseries` as JSON, served from the exact read cache (app/metrics/cache.py)
    while nothing it depends on changed. Keyed by the buckets, not the raw `to`: a default
    `to` (now) hits until a new bucket starts."""
    scope = Scope(workspace_id, campaign_id)
    state = await _read_state(session, scope)
    plan = _plan(state.timezone, state.origin, config, bucket=bucket, start=start, end=end)
    signature = _signature(state)

    async def compute() -> bytes:
        return to_json(await _series(session, scope, plan, state.pending, group_by))

    if signature is None:
        return await compute()
    key = ("series", workspace_id, campaign_id, bucket, plan.first, plan.last, group_by)
    return await cache.responses.get_or_compute(key, signature, compute)


@dataclass(frozen=True)
class _Plan:
    """The buckets of a series: every bucket whose start lies in [first, end). `first` and
    `last` are computed directly (they key the cache); the list only on a cache miss."""

    bucket: Bucket
    zone: ZoneInfo
    first: datetime
    last: datetime
    end: datetime

    @property
    def starts(self) -> list[datetime]:
        return _bucket_starts(self.bucket, self.zone, self.first, self.end)


def _plan(
    timezone: str | None,
    origin: datetime,
    config: MetricsSettings,
    *,
    bucket: Bucket,
    start: datetime | None,
    end: datetime | None,
) -> _Plan:
    zone = ZoneInfo(timezone or "UTC")
    end = end or utcnow()
    start = start or origin
    if start >= end:
        raise Unprocessable("`from` must be before `to`.")
    if start < EARLIEST or end > LATEST:
        raise Unprocessable("`from` and `to` must lie between the years 1900 and 9000.")
    span = (end - start) / (timedelta(hours=1) if bucket == "hour" else timedelta(days=1))
    if span > config.max_buckets:
        raise Unprocessable(f"The range spans more than {config.max_buckets} {bucket} buckets.")
    first = _bucket_floor(bucket, zone, start)
    last = _bucket_floor(bucket, zone, end)
    if last >= end:  # `end` opens a bucket: that bucket is outside the range
        last = _bucket_floor(bucket, zone, end - timedelta(microseconds=1))
    return _Plan(bucket, zone, first, last, end)


async def _series(
    session: AsyncSession,
    scope: Scope,
    plan: _Plan,
    pending: Sequence[uuid.UUID],
    group_by: SeriesGroupBy | None,
) -> dict[str, Any]:
    """A `CampaignTimeseries` as a plain document (field aliases as keys): the JSON endpoint
    serialises it directly, since building 384 points x 6 models per miss cost more than the
    figures' SQL; `campaign_timeseries` validates it into the model."""
    wide = repo.stored_wide(scope, pending)
    bucket_start: ColumnElement[Any]
    if plan.bucket == "hour":
        bucket_start = wide.c.bucket
    else:
        bucket_start = func.date_trunc("day", wide.c.bucket, literal(plan.zone.key))
    names = GROUP_COLUMNS.get(group_by or "", ())
    rows = await repo.figures(
        session,
        wide,
        [bucket_start, *(wide.c[name] for name in names)],
        where=[bucket_start >= plan.first, bucket_start < plan.end],
    )
    by_group: dict[tuple[Any, ...], dict[datetime, dict[str, Decimal]]] = {}
    for key, values in rows:
        by_group.setdefault(tuple(key[1:]), {})[key[0]] = values
    if not by_group:
        by_group[tuple("" for _ in names)] = {}
    series = []
    starts = plan.starts
    for labels_key in sorted(by_group, key=lambda k: tuple(str(v) for v in k)):
        points_by_start = by_group[labels_key]
        labels: dict[str, Any] = dict.fromkeys(SERIES_LABELS)
        campaign_level = not names or not any(value != "" for value in labels_key)
        if not campaign_level:
            labels.update(zip(names, labels_key, strict=True))
        empty = to_figures({}, campaign_level=campaign_level)
        points = [
            {
                "start": when,
                "figures": (
                    to_figures(found, campaign_level=campaign_level)
                    if (found := points_by_start.get(when)) is not None
                    else empty
                ),
            }
            for when in starts
        ]
        series.append({**labels, "points": points})
    return {
        "campaign_id": scope.campaign_id,
        "bucket": plan.bucket,
        "timezone": plan.zone.key,
        "from": plan.first,
        "to": _bucket_end(plan.bucket, plan.zone, plan.last),
        "group_by": group_by,
        "series": series,
    }


# --- recount -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    key: dict[str, Any]
    metric: str
    stored: Decimal
    recounted: Decimal


def _keyed(
    rows: Sequence[tuple[tuple[Any, ...], dict[str, Decimal]]],
) -> dict[Key, dict[str, Decimal]]:
    return {key: values for key, values in rows if any(v != 0 for v in values.values())}


async def recount(session: AsyncSession, scope: Scope, *, fix: bool = False) -> list[Difference]:
    """Recompute figures from raw rows (messages, enrollments, events) and compare them with
    what reads serve (rollups + deltas + queued events), per key and hour. With `fix`, rewrite
    facts and rollups of the scope from the recount; run it under REPEATABLE READ with the fold
    lock held (`app.metrics.tasks.recount_command` does)."""
    stored_wide = repo.stored_wide(scope, await repo.pending_ids(session, scope))
    recount_wide = repo.recount_wide(scope)
    stored = _keyed(
        await repo.figures(session, stored_wide, [stored_wide.c[c] for c in DELTA_GROUP])
    )
    raw = _keyed(
        await repo.figures(session, recount_wide, [recount_wide.c[c] for c in DELTA_GROUP])
    )
    differences: list[Difference] = []
    for key in sorted(stored.keys() | raw.keys(), key=lambda k: tuple(str(v) for v in k)):
        left, right = stored.get(key, {}), raw.get(key, {})
        for metric in METRICS:
            a, b = left.get(metric, Decimal(0)), right.get(metric, Decimal(0))
            if a != b:
                labels = dict(zip(DELTA_GROUP, key, strict=True))
                differences.append(Difference(labels, metric, a, b))
    if fix and differences:
        await repo.rebuild_facts(session, scope)
        await repo.replace_rollups(session, scope, raw)
    return differences
