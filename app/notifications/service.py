"""Telling a workspace's owners, by email through the configured provider, that something
they rely on stopped working, and recording it in the audit log.

Two subjects (docs/channels.md, "Owner notifications"):

- a webhook endpoint Herald disabled (every attempt failing for
  `HERALD_WEBHOOKS__DISABLE_AFTER_FAILING_DAYS`, or the receiver answered 410): once per
  disablement, to the workspace owners;
- a campaign whose sends fail persistently: within the last
  `HERALD_NOTIFICATIONS__FAILING_WINDOW_MINUTES`, at least `FAILING_MIN_FAILED` of its messages
  ended `failed` (each after its retries, or refused permanently) and they are at least
  `FAILING_MIN_SHARE` of its messages settled (sent or failed) in that window; to the workspace
  owners and the campaign's owner, at most once per `REPEAT_HOURS` per campaign.

A notice is sent, then recorded as `owner.notified` (actor `system`, on the endpoint or the
campaign). A send that fails is recorded as `owner.notification_failed` and tried again an
hour later. Delivery is at least once: a crash between the send and its record sends again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import Actor, record
from app.channels.providers import provider_for, provider_name
from app.channels.providers.base import OutboundMessage, SendError
from app.config import Settings
from app.core.db import transaction
from app.core.ids import new_id
from app.notifications import repository
from app.notifications.repository import FAILED, NOTIFIED, DisabledEndpoint, FailingCampaign

log = structlog.get_logger("herald.notifications")

# Disablements older than this are not announced any more (e.g. a worker down for weeks).
ENDPOINT_NOTICE_HORIZON = timedelta(days=7)
RETRY_FAILED_NOTICE_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Notice:
    kind: str  # webhook_endpoint.disabled, campaign.sends_failing
    workspace_id: uuid.UUID
    entity_type: str
    entity_id: uuid.UUID
    recipients: list[str]
    subject: str
    text: str
    about: uuid.UUID | None = None  # the audit event it reports, when there is one


@dataclass
class Report:
    notified: int = 0
    failed: int = 0


def endpoint_notice(endpoint: DisabledEndpoint, recipients: list[str]) -> Notice:
    reason = str(endpoint.data.get("reason") or "it kept failing")
    return Notice(
        kind="webhook_endpoint.disabled",
        workspace_id=endpoint.workspace_id,
        entity_type="webhook_endpoint",
        entity_id=endpoint.endpoint_id,
        recipients=recipients,
        subject=f"Herald disabled your webhook endpoint {endpoint.url}",
        text=(
            f"Herald stopped sending events to the webhook endpoint {endpoint.url} "
            f"(id {endpoint.endpoint_id}) at {endpoint.occurred_at.isoformat()}.\n\n"
            f"Why: {reason}\n\n"
            "Events keep being recorded while it is disabled. Fix the receiver, then enable "
            "the endpoint again (PATCH /v1/webhook-endpoints/{id} with "
            '{"enabled": true}); what waited is delivered then, and '
            "POST /v1/webhook-endpoints/{id}/replay re-sends older events.\n"
        ),
        about=endpoint.about,
    )


def campaign_notice(campaign: FailingCampaign, recipients: list[str], window: timedelta) -> Notice:
    minutes = int(window.total_seconds() // 60)
    return Notice(
        kind="campaign.sends_failing",
        workspace_id=campaign.workspace_id,
        entity_type="campaign",
        entity_id=campaign.campaign_id,
        recipients=recipients,
        subject=f"Sends of the campaign {campaign.name!r} are failing",
        text=(
            f"In the last {minutes} minutes, {campaign.failed} of the "
            f"{campaign.settled} messages of the campaign {campaign.name!r} "
            f"(id {campaign.campaign_id}) that finished sending failed, after their retries.\n\n"
            f"Latest error: {campaign.last_error or 'none recorded'}\n\n"
            "Check the email provider's settings and the failed messages "
            "(GET /v1/messages?status=failed). The campaign keeps running; pause it with "
            "POST /v1/campaigns/{id}/pause if the failures are on your side.\n"
        ),
    )


async def notify_owners(
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    now: datetime,
) -> Report:
    """One pass: find what owners were not told yet, tell them, record it."""
    config = settings.notifications
    report = Report()
    if not config.enabled:
        return report
    window = timedelta(minutes=config.failing_window_minutes)
    async with transaction(factory) as session:
        notices: list[Notice] = []
        for endpoint in await repository.disabled_endpoints(
            session, now - ENDPOINT_NOTICE_HORIZON, now - RETRY_FAILED_NOTICE_AFTER
        ):
            owners = await repository.recipients(session, endpoint.workspace_id)
            notices.append(endpoint_notice(endpoint, owners))
        for campaign in await repository.failing_campaigns(
            session,
            since=now - window,
            repeat_after=now - timedelta(hours=config.repeat_hours),
            retry_after=now - RETRY_FAILED_NOTICE_AFTER,
            min_failed=config.failing_min_failed,
            min_share=config.failing_min_share,
        ):
            people = await repository.recipients(
                session, campaign.workspace_id, campaign.owner_member_id
            )
            notices.append(campaign_notice(campaign, people, window))
    for notice in notices:
        error = await _send(settings, http, notice)
        async with transaction(factory) as session:
            await _record(session, notice, settings, error)
        if error is None:
            report.notified += 1
        else:
            report.failed += 1
            log.warning("owner_notification_failed", kind=notice.kind, error=error)
    return report


async def _send(settings: Settings, http: httpx.AsyncClient, notice: Notice) -> str | None:
    """Send to each recipient; the first error, or None."""
    name = provider_name(settings, "email")
    provider = provider_for(settings, http, name)
    sender = parseaddr(settings.channels.default_from)[1]
    for recipient in notice.recipients:
        message = OutboundMessage(
            id=new_id(),
            workspace_id=notice.workspace_id,
            channel="email",
            recipient=recipient,
            content={"subject": notice.subject, "text": notice.text},
            # An operational notice has no marketing consent to withdraw: RFC 2369's mailto
            # form reaches whoever runs the sending address.
            unsubscribe_url=f"mailto:{sender}?subject=unsubscribe",
        )
        try:
            await provider.send(message)
        except SendError as exc:
            return f"{recipient}: {exc}"[:500]
    return None


async def _record(
    session: AsyncSession, notice: Notice, settings: Settings, error: str | None
) -> None:
    data: dict[str, object] = {
        "kind": notice.kind,
        "recipients": notice.recipients,
        "subject": notice.subject,
        "provider": provider_name(settings, "email"),
    }
    if notice.about is not None:
        data["about"] = str(notice.about)
    if error is not None:
        data["error"] = error
    await record(
        session,
        notice.workspace_id,
        Actor.system(),
        NOTIFIED if error is None else FAILED,
        entity_type=notice.entity_type,
        entity_id=notice.entity_id,
        data=data,
    )
