"""The one definition of a conversion: a read model over campaigns, messages and events,
kept as a reusable SQLAlchemy Core query that repositories compose and run (the metrics
fold and recount, experiments). It reads three other domains' tables, so it is a
repository (docs/architecture.md), though it executes nothing itself.

A **conversion** is a goal event (`campaign.goal.event_type`) by a contact of the campaign's
workspace that occurred after a *touch* of that campaign and within the goal window of that
touch:

- a touch is a message of the campaign sent to the contact (`messages.sent_at` set);
- the event qualifies when `touch.sent_at <= event.occurred_at < touch.sent_at + window`
  for at least one touch (the window is the campaign's ISO 8601 `goal.window`, e.g. `P7D`);
- each goal event counts at most once per campaign, however many touches precede it;
- it is credited to the **last touch** at or before it (ties on `sent_at` broken by the
  message id, highest wins): that message's step, variant and channel;
- its revenue is the event's `revenue` column (NULL counts as 0 in sums).

Because the last touch before the event is the latest one, "some touch within the window"
is the same as "the last touch is within the window": the query finds the last touch with a
lateral `LIMIT 1` on `ix_messages_contact_channel_time` (contact first) and checks the window
on it.

`conversions_query(...)` returns a `Select` with the columns listed in `CONVERSION_COLUMNS`;
callers filter it further (by campaign, by event ids) or aggregate it as a subquery::

    q = conversions_query(workspace_id=ws, campaign_ids=[campaign_id]).subquery()
    await session.execute(select(q.c.variant, func.count()).group_by(q.c.variant))

Used by the metrics rollups (app/metrics), the recount, and experiments.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Interval, Select, and_, cast, select, true

from app.campaigns.models import Campaign
from app.channels.models import Message
from app.events.models import Event

CONVERSION_COLUMNS = (
    "event_id",
    "workspace_id",
    "campaign_id",
    "contact_id",
    "occurred_at",
    "revenue",
    "message_id",
    "sequence_id",
    "step_key",
    "variant",
    "channel",
    "sent_at",
)


def goal_window() -> ColumnElement[object]:
    """The campaign's goal window as an SQL interval (ISO 8601 text casts natively)."""
    return cast(Campaign.goal["window"].astext, Interval())


def conversions_query(
    *,
    workspace_id: uuid.UUID | None = None,
    campaign_ids: Sequence[uuid.UUID] | None = None,
    event_ids: Sequence[uuid.UUID] | None = None,
    event_filter: ColumnElement[bool] | None = None,
) -> Select[tuple[object, ...]]:
    """Every conversion (one row per goal event and campaign), credited to its last touch.

    Filters (all optional, combined with AND): one workspace, some campaigns, some event ids
    or any extra condition on `Event` (e.g. `Event.id.in_(subquery)`).
    """
    touch = (
        select(
            Message.id.label("message_id"),
            Message.sequence_id,
            Message.step_key,
            Message.variant,
            Message.channel,
            Message.sent_at,
        )
        .where(
            Message.workspace_id == Event.workspace_id,
            Message.contact_id == Event.contact_id,
            Message.campaign_id == Campaign.id,
            Message.sent_at.is_not(None),
            Message.sent_at <= Event.occurred_at,
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
        .lateral("touch")
    )
    conditions: list[ColumnElement[bool]] = [
        Campaign.workspace_id == Event.workspace_id,
        Campaign.goal.is_not(None),
        Event.type == Campaign.goal["event_type"].astext,
        Event.occurred_at < touch.c.sent_at + goal_window(),
    ]
    if workspace_id is not None:
        conditions.append(Event.workspace_id == workspace_id)
    if campaign_ids is not None:
        conditions.append(Campaign.id.in_(list(campaign_ids)))
    if event_ids is not None:
        conditions.append(Event.id.in_(list(event_ids)))
    if event_filter is not None:
        conditions.append(event_filter)
    return (
        select(
            Event.id.label("event_id"),
            Event.workspace_id,
            Campaign.id.label("campaign_id"),
            Event.contact_id,
            Event.occurred_at,
            Event.revenue,
            touch.c.message_id,
            touch.c.sequence_id,
            touch.c.step_key,
            touch.c.variant,
            touch.c.channel,
            touch.c.sent_at,
        )
        .select_from(Event)
        .join(Campaign, true())
        .join(touch, true())
        .where(and_(*conditions))
    )


__all__ = ["CONVERSION_COLUMNS", "conversions_query", "goal_window"]
