"""Webhook delivery against real local receivers that verify every request with the
reference `standardwebhooks` library: end to end through a worker, the retry schedule with
the clock moved, 410 / 3xx / 429 / timeout outcomes, rotation, and proof the signatures are
real (tampered body, stale timestamp)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.audit.models import AuditEvent
from app.config import Settings
from app.core.clock import clock
from app.core.signing import new_secret
from app.core.state import AppState
from app.outbox.catalogue import ContactUnsubscribed, SegmentEntered
from app.webhooks.dispatch.schedule import MAX_ATTEMPTS, RETRY_DELAYS, parse_retry_after
from app.webhooks.dispatch.sender import USER_AGENT
from app.webhooks.dispatch.service import deliver_endpoint
from tests.fixtures.receivers import (
    Answer,
    attempts,
    deliveries,
    emit_events,
    endpoint_row,
    events_of_type,
    make_endpoint,
    receivers,
    start_receiver,
    worker_ctx,
)
from tests.fixtures.tenants import Tenant
from tests.fixtures.worker import run_jobs

__all__ = ["receivers"]  # the fixture, imported for its tests


def unsubscribed() -> ContactUnsubscribed:
    return ContactUnsubscribed(contact_id=uuid.uuid4(), channel="email", source="api")


async def test_emit_to_worker_to_receiver_verified(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    secret = new_secret()
    peer, server = await start_receiver(secret)
    receivers.append(server)
    endpoint = await make_endpoint(
        state.session_factory,
        tenant.workspace_id,
        peer.url,
        event_types=["contact.*"],
        secret=secret,
    )
    data = unsubscribed()
    await emit_events(
        state,
        tenant.workspace_id,
        [data, SegmentEntered(segment_id=uuid.uuid4(), contact_id=uuid.uuid4())],
    )

    await run_jobs(settings)  # the job emit enqueued, in a real arq worker

    assert len(peer.received) == 1  # the segment event is not in the endpoint's filter
    got = peer.received[0]
    assert got.verified == {secret: True}
    assert Webhook(secret).verify(got.body, got.headers)["data"]["contact_id"] == str(
        data.contact_id
    )
    envelope = got.json()
    assert envelope["type"] == "contact.unsubscribed"
    assert envelope["version"] == 1
    assert set(envelope) == {"type", "version", "timestamp", "data"}
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == USER_AGENT
    [event] = await events_of_type(state.session_factory, "contact.unsubscribed")
    assert got.headers["webhook-id"] == f"msg_{event.id.hex}"
    [delivery] = await deliveries(state.session_factory, endpoint.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.completed_at is not None
    assert delivery.lease_until is None
    [attempt] = await attempts(state.session_factory, delivery.id)
    assert (attempt.attempt, attempt.outcome, attempt.status_code) == (1, "success", 200)
    assert attempt.response_excerpt == '{"ok": true}'
    assert attempt.latency_ms is not None
    assert attempt.latency_ms >= 0
    row = await endpoint_row(state.session_factory, endpoint.id)
    assert row.last_success_at is not None
    assert row.failing_since is None


async def test_retry_schedule_with_the_clock_moved(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    secret = new_secret()
    peer, server = await start_receiver(secret)
    receivers.append(server)
    peer.default = Answer(500, body=b"boom " * 400)
    endpoint = await make_endpoint(
        state.session_factory, tenant.workspace_id, peer.url, secret=secret
    )
    ctx = worker_ctx(state, settings)
    started = clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed()])

    await deliver_endpoint(ctx, endpoint.id)  # attempt 1: "about now"
    assert len(peer.received) == 1
    for number, delay in enumerate(RETRY_DELAYS, start=1):
        [delivery] = await deliveries(state.session_factory, endpoint.id)
        assert (delivery.status, delivery.attempts) == ("pending", number)
        assert delivery.next_attempt_at is not None
        gap = delivery.next_attempt_at - clock.now()
        assert delay * 0.9 <= gap <= delay * 1.1  # the schedule, with +-10 % jitter
        # A moment early: nothing goes out.
        clock.freeze(delivery.next_attempt_at - timedelta(milliseconds=1))
        await deliver_endpoint(ctx, endpoint.id)
        assert len(peer.received) == number
        clock.freeze(delivery.next_attempt_at)
        await deliver_endpoint(ctx, endpoint.id)
        assert len(peer.received) == number + 1

    [delivery] = await deliveries(state.session_factory, endpoint.id)
    assert (delivery.status, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    assert delivery.next_attempt_at is None
    assert delivery.completed_at == clock.now()
    logged = await attempts(state.session_factory, delivery.id)
    assert [a.attempt for a in logged] == list(range(1, MAX_ATTEMPTS + 1))
    assert {(a.outcome, a.status_code) for a in logged} == {("http_error", 500)}
    assert all(len(a.response_excerpt or "") == 1024 for a in logged)  # first KiB only
    # Same id and bytes every time; every one verified by the reference library.
    assert len({r.headers["webhook-id"] for r in peer.received}) == 1
    assert len({r.body for r in peer.received}) == 1
    assert peer.all_verified()
    assert len({r.headers["webhook-timestamp"] for r in peer.received}) == MAX_ATTEMPTS
    # About 27 h of failure: not yet the 5 days that disable an endpoint.
    row = await endpoint_row(state.session_factory, endpoint.id)
    assert row.enabled
    assert row.failing_since == started


async def test_410_disables_the_endpoint_with_audit_and_notice(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    peer, server = await start_receiver()
    watcher, watcher_server = await start_receiver()
    receivers.extend([server, watcher_server])
    peer.default = Answer(410, body=b"gone")
    factory = state.session_factory
    endpoint = await make_endpoint(
        factory, tenant.workspace_id, peer.url, event_types=["contact.*"]
    )
    other = await make_endpoint(
        factory, tenant.workspace_id, watcher.url, event_types=["webhook_endpoint.*"]
    )
    ctx = worker_ctx(state, settings)
    await emit_events(state, tenant.workspace_id, [unsubscribed(), unsubscribed()])

    report = await deliver_endpoint(ctx, endpoint.id)

    assert report["disabled"] == 1
    assert {d.status for d in await deliveries(factory, endpoint.id)} == {"failed"}
    row = await endpoint_row(factory, endpoint.id)
    assert (row.enabled, row.disabled_reason) == (False, "410 Gone")
    assert row.disabled_at is not None
    async with factory() as session:
        audits = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "webhook_endpoint.disabled")
                )
            )
            .scalars()
            .all()
        )
    assert [(a.entity_id, a.actor_type) for a in audits] == [(endpoint.id, "system")]
    # The other endpoint hears about it; the disabled one gets nothing more.
    await deliver_endpoint(ctx, other.id)
    [notice] = watcher.received
    assert notice.json()["type"] == "webhook_endpoint.disabled"
    assert notice.json()["data"]["endpoint_id"] == str(endpoint.id)
    assert notice.json()["data"]["reason"] == "410 Gone"
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, endpoint.id)
    assert len(peer.received) == 2


async def test_a_redirect_is_a_failure_and_never_followed(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    peer, server = await start_receiver()
    elsewhere, elsewhere_server = await start_receiver()
    receivers.extend([server, elsewhere_server])
    peer.default = Answer(302, headers={"Location": elsewhere.url})
    endpoint = await make_endpoint(state.session_factory, tenant.workspace_id, peer.url)
    clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed()])

    await deliver_endpoint(worker_ctx(state, settings), endpoint.id)

    assert len(peer.received) == 1
    assert elsewhere.received == []
    [delivery] = await deliveries(state.session_factory, endpoint.id)
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    [attempt] = await attempts(state.session_factory, delivery.id)
    assert (attempt.outcome, attempt.status_code) == ("http_error", 302)
    assert attempt.error is not None
    assert "not followed" in attempt.error


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_honours_retry_after(
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    receivers: list[asyncio.Server],
    form: str,
) -> None:
    peer, server = await start_receiver()
    receivers.append(server)
    now = clock.freeze(datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC))
    value = "7200" if form == "seconds" else format_datetime(now + timedelta(hours=2), usegmt=True)
    peer.answers = [Answer(429, headers={"Retry-After": value})]
    endpoint = await make_endpoint(state.session_factory, tenant.workspace_id, peer.url)
    ctx = worker_ctx(state, settings)
    await emit_events(state, tenant.workspace_id, [unsubscribed()])

    await deliver_endpoint(ctx, endpoint.id)

    [delivery] = await deliveries(state.session_factory, endpoint.id)
    assert delivery.next_attempt_at == now + timedelta(hours=2)  # not the 5 s of the schedule
    [attempt] = await attempts(state.session_factory, delivery.id)
    assert (attempt.outcome, attempt.status_code) == ("rate_limited", 429)
    clock.freeze(now + timedelta(hours=2) - timedelta(seconds=1))
    await deliver_endpoint(ctx, endpoint.id)
    assert len(peer.received) == 1
    clock.freeze(now + timedelta(hours=2))
    await deliver_endpoint(ctx, endpoint.id)
    assert len(peer.received) == 2
    [delivery] = await deliveries(state.session_factory, endpoint.id)
    assert delivery.status == "succeeded"


def test_retry_after_parsing() -> None:
    now = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == timedelta(seconds=30)
    assert parse_retry_after("999999999999", now) == timedelta(hours=24)  # capped
    later = format_datetime(now + timedelta(days=3), usegmt=True)
    assert parse_retry_after(later, now) == timedelta(hours=24)
    earlier = format_datetime(now - timedelta(minutes=1), usegmt=True)
    assert parse_retry_after(earlier, now) == timedelta(0)
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None


async def test_a_stalling_receiver_is_a_timeout(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    peer, server = await start_receiver()
    receivers.append(server)
    release = asyncio.Event()
    peer.default = Answer(stall=release)
    endpoint = await make_endpoint(state.session_factory, tenant.workspace_id, peer.url)
    clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed()])

    try:
        await deliver_endpoint(worker_ctx(state, settings, timeout_seconds=0.2), endpoint.id)
    finally:
        release.set()

    [delivery] = await deliveries(state.session_factory, endpoint.id)
    assert delivery.status == "pending"
    assert delivery.attempts == 1
    [attempt] = await attempts(state.session_factory, delivery.id)
    assert (attempt.outcome, attempt.status_code) == ("timeout", None)


async def test_rotation_sends_both_signatures_during_the_overlap(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    old, new = new_secret(), new_secret()
    peer, server = await start_receiver()
    receivers.append(server)
    peer.secrets = [old, new]
    now = clock.freeze()
    endpoint = await make_endpoint(
        state.session_factory,
        tenant.workspace_id,
        peer.url,
        secret=new,
        previous_secret=old,
        previous_secret_expires_at=now + timedelta(hours=24),
    )
    ctx = worker_ctx(state, settings)
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, endpoint.id)

    during = peer.received[0]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert during.verified == {old: True, new: True}  # each verifies on its own

    clock.freeze(now + timedelta(hours=24))  # the overlap is over
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, endpoint.id)
    after = peer.received[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert after.verified == {old: False, new: True}


async def test_tampering_and_staleness_are_rejected_by_the_verifier(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    secret = new_secret()
    peer, server = await start_receiver(secret)
    receivers.append(server)
    endpoint = await make_endpoint(
        state.session_factory, tenant.workspace_id, peer.url, secret=secret
    )
    ctx = worker_ctx(state, settings)
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, endpoint.id)

    got = peer.received[0]
    verifier = Webhook(secret)  # the reference library, real time
    verifier.verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(got.body.replace(b'"email"', b'"sms"'), got.headers)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(got.body, {**got.headers, "webhook-id": "msg_other"})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(got.body, got.headers)
    moved = str(int(got.headers["webhook-timestamp"]) + 1)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(got.body, {**got.headers, "webhook-timestamp": moved})

    # Signed 10 minutes ago (Herald's clock behind): a valid signature, a stale timestamp.
    clock.freeze(datetime.now(UTC) - timedelta(minutes=10))
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, endpoint.id)
    stale = peer.received[1]
    assert stale.verified == {secret: True}  # right signature (checked at Herald's time)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(stale.body, stale.headers)
