"""Queries of the notifications scan. The scan is not about one tenant, so it reads across
workspaces; everything it finds carries its workspace id, and the owners it writes to are read
per workspace.

Whether a subject was already notified is read from the audit log itself (`owner.notified`,
`owner.notification_failed` rows): the notice and its record are the same row, so there is no
second table to keep in step."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

NOTIFIED = "owner.notified"
FAILED = "owner.notification_failed"

_DISABLED_ENDPOINTS = text(
    """
    SELECT a.id AS about, a.workspace_id, a.entity_id AS endpoint_id, a.occurred_at,
           a.data AS data, w.url AS url
    FROM audit_events AS a
    JOIN webhook_endpoints AS w ON w.id = a.entity_id AND w.workspace_id = a.workspace_id
    WHERE a.action = 'webhook_endpoint.disabled'
      AND a.actor_type = 'system'
      AND a.occurred_at >= :since
      AND NOT EXISTS (
        SELECT 1 FROM audit_events AS n
        WHERE n.workspace_id = a.workspace_id
          AND n.entity_id = a.entity_id
          AND n.data ->> 'about' = a.id::text
          AND (n.action = :notified OR (n.action = :failed AND n.occurred_at >= :retry_after))
      )
    ORDER BY a.occurred_at
    LIMIT :limit
    """
)

_FAILING_CAMPAIGNS = text(
    """
    SELECT e.workspace_id, e.campaign_id, c.name, c.owner_member_id,
           count(*) FILTER (WHERE m.status = 'failed') AS failed,
           count(*) AS settled,
           (array_agg(m.error ORDER BY m.failed_at DESC) FILTER (WHERE m.status = 'failed'))[1]
             AS last_error
    FROM messages AS m
    JOIN enrollments AS e ON e.id = m.enrollment_id
    JOIN campaigns AS c ON c.id = e.campaign_id
    WHERE e.campaign_id IS NOT NULL
      AND ((m.status = 'failed' AND m.failed_at >= :since) OR m.sent_at >= :since)
      AND NOT EXISTS (
        SELECT 1 FROM audit_events AS n
        WHERE n.workspace_id = e.workspace_id
          AND n.entity_id = e.campaign_id
          AND n.data ->> 'kind' = 'campaign.sends_failing'
          AND ((n.action = :notified AND n.occurred_at >= :repeat_after)
               OR (n.action = :failed AND n.occurred_at >= :retry_after))
      )
    GROUP BY e.workspace_id, e.campaign_id, c.name, c.owner_member_id
    HAVING count(*) FILTER (WHERE m.status = 'failed') >= :min_failed
       AND count(*) FILTER (WHERE m.status = 'failed') >= CAST(:min_share AS float8) * count(*)
    ORDER BY e.campaign_id
    LIMIT :limit
    """
)

_RECIPIENTS = text(
    """
    SELECT email FROM members
    WHERE workspace_id = :workspace_id AND (role = 'owner' OR id = :member_id)
    ORDER BY email
    """
)


@dataclass(frozen=True)
class DisabledEndpoint:
    about: uuid.UUID  # the `webhook_endpoint.disabled` audit event
    workspace_id: uuid.UUID
    endpoint_id: uuid.UUID
    occurred_at: datetime
    url: str
    data: dict[str, Any]


@dataclass(frozen=True)
class FailingCampaign:
    workspace_id: uuid.UUID
    campaign_id: uuid.UUID
    name: str
    owner_member_id: uuid.UUID | None
    failed: int
    settled: int
    last_error: str | None


async def disabled_endpoints(
    session: AsyncSession, since: datetime, retry_after: datetime, limit: int = 100
) -> list[DisabledEndpoint]:
    """Endpoints disabled by Herald (not by a user) since `since` whose owners have not been
    told (a failed attempt is retried once `retry_after` has passed)."""
    rows = await session.execute(
        _DISABLED_ENDPOINTS,
        {
            "since": since,
            "retry_after": retry_after,
            "notified": NOTIFIED,
            "failed": FAILED,
            "limit": limit,
        },
    )
    return [
        DisabledEndpoint(
            row.about, row.workspace_id, row.endpoint_id, row.occurred_at, row.url, row.data or {}
        )
        for row in rows
    ]


async def failing_campaigns(
    session: AsyncSession,
    *,
    since: datetime,
    repeat_after: datetime,
    retry_after: datetime,
    min_failed: int,
    min_share: float,
    limit: int = 100,
) -> list[FailingCampaign]:
    """Campaigns whose messages settled since `since` include at least `min_failed` failed
    ones, making at least `min_share` of them, and whose owners were not told since
    `repeat_after`."""
    rows = await session.execute(
        _FAILING_CAMPAIGNS,
        {
            "since": since,
            "repeat_after": repeat_after,
            "retry_after": retry_after,
            "min_failed": min_failed,
            "min_share": min_share,
            "notified": NOTIFIED,
            "failed": FAILED,
            "limit": limit,
        },
    )
    return [
        FailingCampaign(
            row.workspace_id,
            row.campaign_id,
            row.name,
            row.owner_member_id,
            int(row.failed),
            int(row.settled),
            row.last_error,
        )
        for row in rows
    ]


async def recipients(
    session: AsyncSession, workspace_id: uuid.UUID, member_id: uuid.UUID | None = None
) -> list[str]:
    """The workspace owners' addresses, plus a given member's (a campaign's owner)."""
    rows = await session.execute(
        _RECIPIENTS, {"workspace_id": workspace_id, "member_id": member_id}
    )
    return list(rows.scalars())
