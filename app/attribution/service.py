"""Attribution of conversions to the touches of the workspace's campaigns (docs/attribution.md).

Checks the parameters (range, lookback), runs the one set-wise query
(`app.attribution.repository`) and shapes totals and groups. Never commits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.attribution.repository import GROUP_KEYS, AttributionQuery, attribution_groups
from app.attribution.schemas import (
    CREDIT_PLACES,
    DEFAULT_LOOKBACK,
    DEFAULT_RANGE,
    MAX_GROUPS,
    MAX_LOOKBACK,
    MAX_RANGE,
    REVENUE_PLACES,
    AttributionGroup,
    AttributionGroupBy,
    AttributionModel,
    AttributionReport,
    AttributionTotals,
)
from app.core.clock import utcnow
from app.core.errors import FieldError, Unprocessable
from app.core.grammar import duration_problem, parse_duration

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
CREDIT_QUANTUM = Decimal(1).scaleb(-CREDIT_PLACES)
REVENUE_QUANTUM = Decimal(1).scaleb(-REVENUE_PLACES)


def _invalid(pointer: str, message: str, code: str) -> Unprocessable:
    return Unprocessable(
        f"{pointer.lstrip('/')}: {message}",
        errors=[FieldError(pointer=pointer, location="query", message=message, code=code)],
    )


def parse_lookback(text: str | None) -> timedelta:
    """An ISO 8601 duration in weeks, days, hours, minutes, seconds; 0 < lookback <= P90D."""
    value = DEFAULT_LOOKBACK if text is None else text
    problem = duration_problem(value)
    lookback = parse_duration(value)
    if problem is not None or lookback is None or lookback <= timedelta(0):
        raise _invalid("/lookback", problem or "must be greater than zero", "invalid_duration")
    if lookback > MAX_LOOKBACK:
        raise _invalid("/lookback", "must be at most P90D", "too_long")
    return lookback


def resolve_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """`to` defaults to now, `from` to 30 days before `to`; half-open, at most 366 days."""
    for pointer, value in (("/from", start), ("/to", end)):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise _invalid(pointer, "must lie between the years 1900 and 9000", "out_of_range")
    end = end if end is not None else utcnow()
    start = start if start is not None else end - DEFAULT_RANGE
    if start >= end:
        raise _invalid("/from", "must be before `to`", "invalid_range")
    if end - start > MAX_RANGE:
        raise _invalid("/to", "the range may span at most 366 days", "range_too_long")
    return start, end


def _group(row: Row[Any], group_by: AttributionGroupBy) -> AttributionGroup:
    values: dict[str, Any] = dict.fromkeys(
        ("campaign_id", "campaign_name", "step_key", "variant", "channel")
    )
    for key in GROUP_KEYS[group_by]:
        values[key] = getattr(row, key)
    if values["campaign_id"] is not None:
        values["campaign_name"] = row.campaign_name
    return AttributionGroup(
        **values,
        conversions=Decimal(row.conversions).quantize(CREDIT_QUANTUM),
        revenue=Decimal(row.revenue).quantize(REVENUE_QUANTUM),
        touches=row.touches,
    )


async def attribution_report(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    model: AttributionModel,
    group_by: AttributionGroupBy,
    start: datetime | None,
    end: datetime | None,
    lookback: str | None,
    max_groups: int = MAX_GROUPS,
) -> AttributionReport:
    window = parse_lookback(lookback)
    start, end = resolve_range(start, end)
    rows = await attribution_groups(
        session,
        AttributionQuery(
            workspace_id=workspace_id,
            start=start,
            end=end,
            lookback=window,
            model=model,
            group_by=group_by,
            max_groups=max_groups,
        ),
    )
    unattributed = next((row for row in rows if not row.attributed), None)
    groups = [_group(row, group_by) for row in rows if row.attributed][:max_groups]
    first = rows[0] if rows else None
    attributed = int(first.total_credit) if first is not None else 0
    attributed_revenue = Decimal(first.total_revenue) if first is not None else Decimal(0)
    lost = unattributed.rows if unattributed is not None else 0
    lost_revenue = (
        Decimal(unattributed.conversion_revenue) if unattributed is not None else Decimal(0)
    )
    groups_total = (first.group_count if first is not None else 0) - (1 if unattributed else 0)
    totals = AttributionTotals(
        conversions=attributed + lost,
        attributed=attributed,
        unattributed=lost,
        revenue=(attributed_revenue + lost_revenue).quantize(REVENUE_QUANTUM),
        attributed_revenue=attributed_revenue.quantize(REVENUE_QUANTUM),
        unattributed_revenue=lost_revenue.quantize(REVENUE_QUANTUM),
        touches=int(first.total_touches) if first is not None else 0,
    )
    return AttributionReport.model_validate(
        {
            "model": model,
            "group_by": group_by,
            "from": start,
            "to": end,
            "lookback": lookback or DEFAULT_LOOKBACK,
            "totals": totals,
            "groups": groups,
            "groups_total": groups_total,
            "truncated": groups_total > len(groups),
        }
    )


__all__ = ["attribution_report", "parse_lookback", "resolve_range"]
