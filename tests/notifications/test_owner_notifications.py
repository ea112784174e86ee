"""Owner notifications through a real SMTP server (aiosmtpd): a webhook endpoint Herald
disabled, and a campaign whose sends fail persistently, each told once by email to the owners
and recorded in the audit log; below the threshold, nobody is bothered."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.config import NotificationSettings, Settings, SmtpSettings
from app.core.clock import clock
from app.core.db import transaction
from app.core.jobs import enqueue
from app.core.state import AppState
from app.notifications.service import notify_owners
from app.outbox.catalogue import ContactUnsubscribed
from app.webhooks.dispatch.service import deliver_endpoint
from tests.fixtures import factories
from tests.fixtures import launch as ls
from tests.fixtures import worker as harness
from tests.fixtures.channels import SmtpSink
from tests.fixtures.receivers import (
    Answer,
    emit_events,
    make_endpoint,
    start_receiver,
    worker_ctx,
)
from tests.fixtures.tenants import Tenant

OWNER = "owner@acme.example"  # make_tenant's owner


def with_smtp(settings: Settings, sink: SmtpSink, **notifications: object) -> Settings:
    channels = settings.channels.model_copy(
        update={"email_provider": "smtp", "smtp": SmtpSettings(port=sink.port, timeout_seconds=5)}
    )
    return settings.model_copy(
        update={
            "channels": channels,
            "notifications": NotificationSettings.model_validate(notifications),
        }
    )


async def audit(state: AppState, action: str) -> list[AuditEvent]:
    async with state.session_factory() as session:
        rows = await session.execute(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
        return list(rows.scalars())


async def test_a_disabled_endpoint_is_emailed_to_the_owner_once(
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    smtp_sink: SmtpSink,
    receivers: list[asyncio.Server],
    client: httpx.AsyncClient,
) -> None:
    """The team's only endpoint: before, nobody heard of its disablement."""
    peer, server = await start_receiver()
    receivers.append(server)
    peer.default = Answer(410, body=b"gone")
    endpoint = await make_endpoint(state.session_factory, tenant.workspace_id, peer.url)
    unsubscribed = ContactUnsubscribed(contact_id=uuid.uuid4(), channel="email", source="one_click")
    await emit_events(state, tenant.workspace_id, [unsubscribed])
    assert (await deliver_endpoint(worker_ctx(state, settings), endpoint.id))["disabled"] == 1
    configured = with_smtp(settings, smtp_sink)

    # The worker's cron job, run by a real burst worker.
    async with transaction(state.session_factory, state.queue) as session:
        enqueue(session, "notify_owners_scan", job_key=(uuid.uuid4(),))
    await harness.run_jobs(configured)

    [mail] = smtp_sink.emails()
    assert smtp_sink.received[0].rcpt_tos == [OWNER]
    assert mail["Subject"] == f"Herald disabled your webhook endpoint {peer.url}"
    body = mail.get_content()
    assert "410 Gone" in body
    assert str(endpoint.id) in body
    [disabled] = await audit(state, "webhook_endpoint.disabled")
    [notified] = await audit(state, "owner.notified")
    assert (notified.entity_type, notified.entity_id) == ("webhook_endpoint", endpoint.id)
    assert notified.actor_type == "system"
    assert notified.data is not None
    assert notified.data["about"] == str(disabled.id)
    assert notified.data["recipients"] == [OWNER]
    assert notified.data["provider"] == "smtp"
    # The audit API shows it to the workspace.
    listed = await client.get(
        "/v1/audit-events", params={"action": "owner.*"}, headers=tenant.headers
    )
    assert [e["action"] for e in listed.json()["data"]] == ["owner.notified"]

    again = await notify_owners(state.session_factory, configured, state.http, clock.now())
    assert again.notified == 0
    assert len(smtp_sink.received) == 1


async def test_a_notice_the_provider_refuses_is_recorded_and_retried_an_hour_later(
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    smtp_sink: SmtpSink,
    receivers: list[asyncio.Server],
) -> None:
    now = clock.freeze()
    peer, server = await start_receiver()
    receivers.append(server)
    peer.default = Answer(410, body=b"gone")
    endpoint = await make_endpoint(state.session_factory, tenant.workspace_id, peer.url)
    await emit_events(
        state,
        tenant.workspace_id,
        [ContactUnsubscribed(contact_id=uuid.uuid4(), channel="email", source="one_click")],
    )
    await deliver_endpoint(worker_ctx(state, settings), endpoint.id)
    configured = with_smtp(settings, smtp_sink)
    smtp_sink.rcpt_replies[OWNER] = "550 5.1.1 mailbox unavailable"

    first = await notify_owners(state.session_factory, configured, state.http, now)

    assert (first.notified, first.failed) == (0, 1)
    [failed] = await audit(state, "owner.notification_failed")
    assert failed.data is not None
    assert "550" in failed.data["error"]
    clock.advance(timedelta(minutes=30))
    assert (
        await notify_owners(state.session_factory, configured, state.http, clock.now())
    ).failed == 0
    del smtp_sink.rcpt_replies[OWNER]
    clock.advance(timedelta(minutes=31))
    retried = await notify_owners(state.session_factory, configured, state.http, clock.now())
    assert retried.notified == 1
    assert [m["To"] for m in smtp_sink.emails()] == [OWNER]


async def launch_to(
    client: httpx.AsyncClient,
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    sink: SmtpSink,
    *,
    good: int,
    refused: int,
    wait: str | None = None,
) -> uuid.UUID:
    """A running campaign whose welcome emails went through `settings`' SMTP server, which
    refuses the `refused` addresses for good (550)."""
    tag = uuid.uuid4().hex[:6]
    addresses = [f"ok{i}-{tag}@acme.example" for i in range(good)]
    for index in range(refused):
        addresses.append(f"gone{index}-{tag}@acme.example")
        sink.rcpt_replies[addresses[-1]] = "550 5.1.1 no such user"
    contacts = [await factories.contact(client, tenant, email=address) for address in addresses]
    segment = await factories.static_segment(client, tenant, contacts)
    sequence = await ls.sequence(client, tenant, wait=wait)
    campaign_id = await ls.campaign(
        state.session_factory, tenant, sequence, [segment], start_at=clock.now()
    )
    scheduled = await client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=tenant.headers)
    assert scheduled.status_code == 200, scheduled.text
    await ls.campaigns_scan(state, settings)
    await harness.scan(state, settings)
    return campaign_id


async def test_persistently_failing_sends_are_emailed_to_the_owner(
    client: httpx.AsyncClient,
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    smtp_sink: SmtpSink,
) -> None:
    clock.freeze()
    configured = with_smtp(settings, smtp_sink)
    # welcome, then 25 hours later a follow-up: both fail for the five refused addresses.
    campaign_id = await launch_to(
        client, state, configured, tenant, smtp_sink, good=2, refused=5, wait="PT25H"
    )
    assert len(smtp_sink.received) == 2  # the two good addresses

    report = await notify_owners(state.session_factory, configured, state.http, clock.now())

    assert report.notified == 1
    notice = smtp_sink.emails()[-1]
    assert smtp_sink.received[-1].rcpt_tos == [OWNER]
    assert notice["Subject"] == "Sends of the campaign 'Launch test' are failing"
    text = notice.get_content()
    assert "5 of the 7 messages" in text
    assert "550" in text
    [notified] = await audit(state, "owner.notified")
    assert (notified.entity_type, notified.entity_id) == ("campaign", campaign_id)
    assert notified.data is not None
    assert notified.data["kind"] == "campaign.sends_failing"
    assert (
        await notify_owners(state.session_factory, configured, state.http, clock.now())
    ).notified == 0

    # The follow-ups fail the same way 25 hours later: told again, as repeat_hours (24) allows.
    clock.advance(timedelta(hours=25, minutes=1))
    await harness.scan(state, configured)
    rarely = with_smtp(settings, smtp_sink, repeat_hours=48)
    assert (
        await notify_owners(state.session_factory, rarely, state.http, clock.now())
    ).notified == 0
    again = await notify_owners(state.session_factory, configured, state.http, clock.now())
    assert again.notified == 1
    assert len(await audit(state, "owner.notified")) == 2


async def test_a_few_failures_among_many_sends_are_not_persistent(
    client: httpx.AsyncClient,
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    smtp_sink: SmtpSink,
) -> None:
    """Four bad addresses are below the five failures; five among twelve sends are below
    half."""
    clock.freeze()
    configured = with_smtp(settings, smtp_sink)
    await launch_to(client, state, configured, tenant, smtp_sink, good=1, refused=4)
    assert (
        await notify_owners(state.session_factory, configured, state.http, clock.now())
    ).notified == 0
    await launch_to(client, state, configured, tenant, smtp_sink, good=7, refused=5)
    assert (
        await notify_owners(state.session_factory, configured, state.http, clock.now())
    ).notified == 0
    assert await audit(state, "owner.notified") == []
    assert all(envelope.rcpt_tos != [OWNER] for envelope in smtp_sink.received)
