"""The attribution query: conversions, their touches, each model's credit, per group.

One statement, set-wise, in one snapshot:

1. `conversions`: the workspace's events whose type is some campaign's goal type
   (`campaigns.goal.event_type`), with `from <= occurred_at < to` (served by
   `ix_events_workspace_type_time`); revenue = the event's `revenue` (NULL = 0).
2. `touched`: each conversion LEFT JOINed to its touches: the contact's messages (of the
   workspace) of any of its campaigns that were delivered (`delivered_at`) or clicked
   (`first_clicked_at`), whose touch time (`delivered_at`, else `sent_at`, else
   `first_clicked_at`) lies in [occurred_at - lookback, occurred_at]. Window functions number
   the touches in time order (ties: message id) and count them per conversion.
3. `shares`: each touch's weight (`app.attribution.weights`, a fraction), truncated to
   `CREDIT_PLACES`; revenue * numerator / denominator truncated to `REVENUE_PLACES`.
4. `credited`: the last touch of each conversion gets 1 (resp. the revenue) minus the others'
   truncated shares, so every conversion sums to exactly 1 and to exactly its revenue.
5. Grouped by `attributed` (has a message) and the grouping keys; window sums over the groups
   carry the totals, so the `LIMIT` on groups cannot change them. The unattributed row (no
   message; one row per unattributed conversion) sorts first and is always returned.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, outerjoin, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.attribution.schemas import (
    CREDIT_PLACES,
    REVENUE_PLACES,
    AttributionGroupBy,
    AttributionModel,
)
from app.attribution.weights import weight
from app.campaigns.models import Campaign
from app.channels.models import Message
from app.events.models import Event

GROUP_KEYS: dict[AttributionGroupBy, tuple[str, ...]] = {
    "campaign": ("campaign_id",),
    "step": ("campaign_id", "step_key"),
    "variant": ("campaign_id", "step_key", "variant"),
    "channel": ("channel",),
}


@dataclass(frozen=True)
class AttributionQuery:
    workspace_id: uuid.UUID
    start: datetime
    end: datetime
    lookback: timedelta
    model: AttributionModel
    group_by: AttributionGroupBy
    max_groups: int


def touch_time() -> ColumnElement[datetime]:
    """When a message touched its contact: delivery, else the send (a click without a
    delivery report proves it arrived), else the click."""
    return func.coalesce(Message.delivered_at, Message.sent_at, Message.first_clicked_at)


def is_touch() -> ColumnElement[bool]:
    """A delivered or clicked message of a campaign."""
    return and_(
        Message.campaign_id.is_not(None),
        or_(Message.delivered_at.is_not(None), Message.first_clicked_at.is_not(None)),
    )


async def attribution_groups(session: AsyncSession, query: AttributionQuery) -> list[Row[Any]]:
    """Rows (`attributed`, keys..., `campaign_name` (with a campaign key), `conversions`,
    `revenue`, `touches`, `rows`, `conversion_revenue`, `total_credit`, `total_revenue`,
    `total_touches`, `group_count`): the unattributed row first (if any), then at most
    `max_groups` groups."""
    ws = query.workspace_id
    goal_types = select(Campaign.goal["event_type"].astext).where(
        Campaign.workspace_id == ws, Campaign.goal.is_not(None)
    )
    conversions = (
        select(
            Event.id.label("event_id"),
            Event.contact_id,
            Event.occurred_at,
            func.coalesce(Event.revenue, Decimal(0)).label("revenue"),
        )
        .where(
            Event.workspace_id == ws,
            Event.type.in_(goal_types),
            Event.occurred_at >= query.start,
            Event.occurred_at < query.end,
        )
        .cte("conversions")
    )
    at = touch_time()
    journeys = outerjoin(
        conversions,
        Message,
        and_(
            Message.workspace_id == ws,
            Message.contact_id == conversions.c.contact_id,
            is_touch(),
            at <= conversions.c.occurred_at,
            at >= conversions.c.occurred_at - query.lookback,
        ),
    )
    per_conversion = conversions.c.event_id
    touched = (
        select(
            conversions.c.event_id,
            conversions.c.revenue,
            Message.id.label("message_id"),
            Message.campaign_id,
            Message.step_key,
            Message.variant,
            Message.channel,
            func.row_number()
            .over(partition_by=per_conversion, order_by=(at, Message.id))
            .label("position"),
            func.count(Message.id).over(partition_by=per_conversion).label("touch_count"),
        )
        .select_from(journeys)
        .subquery("touched")
    )
    numerator, denominator = weight(query.model, touched.c.position, touched.c.touch_count)
    shares = select(
        touched,
        func.trunc(numerator / denominator, CREDIT_PLACES).label("credit_part"),
        func.trunc(touched.c.revenue * numerator / denominator, REVENUE_PLACES).label(
            "revenue_part"
        ),
    ).subquery("shares")
    is_last = shares.c.position == shares.c.touch_count
    credit_part, revenue_part = shares.c.credit_part, shares.c.revenue_part
    others_credit = func.sum(credit_part).over(partition_by=shares.c.event_id) - credit_part
    others_revenue = func.sum(revenue_part).over(partition_by=shares.c.event_id) - revenue_part
    final = select(
        shares,
        case((is_last, 1 - others_credit), else_=credit_part).label("credit"),
        case((is_last, shares.c.revenue - others_revenue), else_=revenue_part).label(
            "revenue_credit"
        ),
    ).subquery("credited")
    attributed = final.c.message_id.is_not(None).label("attributed")
    keys = [final.c[name] for name in GROUP_KEYS[query.group_by]]
    credit_sum = func.sum(final.c.credit)
    revenue_sum = func.sum(final.c.revenue_credit)
    touches = func.count(final.c.message_id)
    names: list[Any] = []
    if "campaign_id" in GROUP_KEYS[query.group_by]:
        name = select(Campaign.name).where(
            Campaign.id == final.c.campaign_id, Campaign.workspace_id == ws
        )
        names.append(name.scalar_subquery().label("campaign_name"))
    statement = (
        select(
            attributed,
            *keys,
            *names,
            credit_sum.label("conversions"),
            revenue_sum.label("revenue"),
            touches.label("touches"),
            func.count().label("rows"),
            func.sum(final.c.revenue).label("conversion_revenue"),
            func.sum(credit_sum).over().label("total_credit"),
            func.sum(revenue_sum).over().label("total_revenue"),
            func.sum(touches).over().label("total_touches"),
            func.count().over().label("group_count"),
        )
        .group_by(attributed, *keys)
        .order_by(
            attributed,
            credit_sum.desc(),
            revenue_sum.desc(),
            touches.desc(),
            *(key.asc().nulls_first() for key in keys),
        )
        .limit(query.max_groups + 1)
    )
    return list((await session.execute(statement)).all())


__all__ = ["GROUP_KEYS", "AttributionQuery", "attribution_groups", "is_touch", "touch_time"]
