"""Per-endpoint queues: auto-disable after days of failure, the endpoint rate limit,
head-of-line isolation, lease expiry, the dispatcher, replay, test sends and retention."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from app.audit.models import AuditEvent
from app.config import Settings
from app.core.clock import clock
from app.core.db import transaction
from app.core.errors import NotFound
from app.core.signing import new_secret
from app.core.state import AppState
from app.outbox.catalogue import ContactUnsubscribed
from app.outbox.models import WebhookAttempt, WebhookEvent
from app.webhooks.dispatch import repository
from app.webhooks.dispatch.service import (
    deliver_endpoint,
    dispatch_due,
    purge_expired,
    replay_delivery,
    replay_failed,
    send_test,
)
from tests.fixtures.receivers import (
    Answer,
    attempts,
    deliveries,
    emit_events,
    endpoint_row,
    make_endpoint,
    receivers,
    start_receiver,
    worker_ctx,
)
from tests.fixtures.tenants import Tenant

__all__ = ["receivers"]


def unsubscribed() -> ContactUnsubscribed:
    return ContactUnsubscribed(contact_id=uuid.uuid4(), channel="email", source="api")


async def test_five_days_of_failure_disable_the_endpoint(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    peer, server = await start_receiver()
    watcher, watcher_server = await start_receiver()
    receivers.extend([server, watcher_server])
    peer.default = Answer(503)
    factory = state.session_factory
    failing = await make_endpoint(factory, tenant.workspace_id, peer.url, event_types=["contact.*"])
    other = await make_endpoint(
        factory, tenant.workspace_id, watcher.url, event_types=["webhook_endpoint.disabled"]
    )
    ctx = worker_ctx(state, settings)
    started = clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, failing.id)

    # Still failing a moment before five days: enabled.
    clock.freeze(started + timedelta(days=5) - timedelta(seconds=1))
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, failing.id)
    row = await endpoint_row(factory, failing.id)
    assert row.enabled
    assert row.failing_since == started

    clock.freeze(started + timedelta(days=5))
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    report = await deliver_endpoint(ctx, failing.id)

    assert report["disabled"] == 1
    row = await endpoint_row(factory, failing.id)
    assert not row.enabled
    assert row.disabled_reason is not None
    assert "5 days" in row.disabled_reason
    async with factory() as session:
        [audit] = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "webhook_endpoint.disabled")
                )
            )
            .scalars()
            .all()
        )
    assert audit.entity_id == failing.id
    assert audit.actor_type == "system"
    await deliver_endpoint(ctx, other.id)
    [notice] = watcher.received
    data = notice.json()["data"]
    assert data["endpoint_id"] == str(failing.id)
    assert data["reason"] == row.disabled_reason
    assert data["failing_since"] is not None
    # A disabled endpoint's job attempts nothing, though deliveries are due.
    sent = len(peer.received)
    clock.advance(timedelta(days=1))
    await deliver_endpoint(ctx, failing.id)
    assert len(peer.received) == sent


async def test_a_success_ends_the_failing_run(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    peer, server = await start_receiver()
    receivers.append(server)
    peer.answers = [Answer(500)]
    endpoint = await make_endpoint(state.session_factory, tenant.workspace_id, peer.url)
    ctx = worker_ctx(state, settings)
    started = clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, endpoint.id)
    assert (await endpoint_row(state.session_factory, endpoint.id)).failing_since == started
    clock.advance(timedelta(seconds=6))
    await deliver_endpoint(ctx, endpoint.id)
    row = await endpoint_row(state.session_factory, endpoint.id)
    assert row.failing_since is None
    assert row.last_success_at == clock.now()


async def test_the_endpoint_rate_limit_defers_without_spending_attempts(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    peer, server = await start_receiver()
    receivers.append(server)
    endpoint = await make_endpoint(
        state.session_factory, tenant.workspace_id, peer.url, rate_limit_per_second=3
    )
    ctx = worker_ctx(state, settings)
    clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed() for _ in range(10)])

    per_window = []
    for _ in range(4):
        before = len(peer.received)
        await deliver_endpoint(ctx, endpoint.id)
        per_window.append(len(peer.received) - before)
        clock.advance(timedelta(seconds=1))

    assert per_window == [3, 3, 3, 1]
    rows = await deliveries(state.session_factory, endpoint.id)
    assert {(d.status, d.attempts) for d in rows} == {("succeeded", 1)}


async def test_a_dead_endpoint_does_not_hold_up_a_healthy_one(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    dead, dead_server = await start_receiver()
    healthy, healthy_server = await start_receiver()
    receivers.extend([dead_server, healthy_server])
    release = asyncio.Event()
    dead.default = Answer(stall=release)
    factory = state.session_factory
    dead_endpoint = await make_endpoint(factory, tenant.workspace_id, dead.url)
    healthy_endpoint = await make_endpoint(factory, tenant.workspace_id, healthy.url)
    ctx = worker_ctx(state, settings, max_concurrency_per_endpoint=4)
    clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed() for _ in range(20)])

    dead_job = asyncio.create_task(deliver_endpoint(ctx, dead_endpoint.id))
    try:
        await dead.until_waiting(4)  # its job is blocked on four stalled requests
        await deliver_endpoint(ctx, healthy_endpoint.id)

        assert len(healthy.received) == 20
        assert {d.status for d in await deliveries(factory, healthy_endpoint.id)} == {"succeeded"}
        assert not dead_job.done()
        assert dead.waiting == 4  # never more than the per-endpoint concurrency
        assert len(dead.received) == 4
    finally:
        release.set()
    await dead_job
    assert {d.status for d in await deliveries(factory, dead_endpoint.id)} == {"succeeded"}


async def test_a_crashed_jobs_lease_expires_and_the_dispatcher_redrives_it(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    peer, server = await start_receiver()
    receivers.append(server)
    endpoint = await make_endpoint(state.session_factory, tenant.workspace_id, peer.url)
    ctx = worker_ctx(state, settings)
    now = clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed(), unsubscribed()])
    assert await dispatch_due(ctx) == 1
    # A job leases the rows, commits, and its worker dies before any attempt.
    lease = timedelta(seconds=settings.webhooks.lease_seconds)
    async with transaction(state.session_factory) as session:
        leased = await repository.lease_due(
            session, endpoint.id, now=now, lease_until=now + lease, limit=100
        )
    assert len(leased) == 2

    assert await dispatch_due(ctx) == 0  # leased: not due for anyone
    await deliver_endpoint(ctx, endpoint.id)
    assert peer.received == []
    clock.freeze(now + lease)
    assert await dispatch_due(ctx) == 1
    await deliver_endpoint(ctx, endpoint.id)
    assert len(peer.received) == 2
    assert {d.status for d in await deliveries(state.session_factory, endpoint.id)} == {"succeeded"}


async def test_replay_one_delivery_sends_the_same_message_again(
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    other_tenant: Tenant,
    receivers: list[asyncio.Server],
) -> None:
    secret = new_secret()
    peer, server = await start_receiver(secret)
    receivers.append(server)
    factory = state.session_factory
    endpoint = await make_endpoint(factory, tenant.workspace_id, peer.url, secret=secret)
    ctx = worker_ctx(state, settings)
    clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed()])
    await deliver_endpoint(ctx, endpoint.id)
    [delivery] = await deliveries(factory, endpoint.id)

    with pytest.raises(NotFound):
        async with transaction(factory, state.queue) as session:
            await replay_delivery(session, other_tenant.workspace_id, delivery.id)
    clock.advance(timedelta(minutes=1))
    async with transaction(factory, state.queue) as session:
        replayed = await replay_delivery(session, tenant.workspace_id, delivery.id)
    assert (replayed.status, replayed.attempts, replayed.completed_at) == ("pending", 0, None)
    await deliver_endpoint(ctx, endpoint.id)

    first, again = peer.received
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body
    assert again.headers["webhook-timestamp"] != first.headers["webhook-timestamp"]
    assert peer.all_verified()
    [delivery] = await deliveries(factory, endpoint.id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert len(await attempts(factory, delivery.id)) == 2  # the log keeps both


async def test_replay_failed_since_a_time(
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    other_tenant: Tenant,
    receivers: list[asyncio.Server],
) -> None:
    peer, server = await start_receiver()
    receivers.append(server)
    peer.default = Answer(500)
    factory = state.session_factory
    endpoint = await make_endpoint(factory, tenant.workspace_id, peer.url)
    start = clock.freeze()
    for minute in range(3):  # three failed deliveries, finished a minute apart
        clock.freeze(start + timedelta(minutes=minute))
        async with transaction(factory, state.queue) as session:
            await send_test(
                session, tenant.workspace_id, endpoint.id, state.http, settings, f"n{minute}"
            )
    assert {d.status for d in await deliveries(factory, endpoint.id)} == {"failed"}

    with pytest.raises(NotFound):
        async with transaction(factory, state.queue) as session:
            await replay_failed(session, other_tenant.workspace_id, endpoint.id, start)
    peer.default = Answer(200)
    async with transaction(factory, state.queue) as session:
        count = await replay_failed(
            session, tenant.workspace_id, endpoint.id, start + timedelta(minutes=1)
        )
    assert count == 2
    await deliver_endpoint(worker_ctx(state, settings), endpoint.id)

    assert [r.json()["data"]["message"] for r in peer.received[3:]] == ["n1", "n2"]
    statuses = [d.status for d in await deliveries(factory, endpoint.id)]
    assert statuses == ["failed", "succeeded", "succeeded"]


async def test_send_test_attempts_inline_whatever_the_filter(
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    other_tenant: Tenant,
    receivers: list[asyncio.Server],
) -> None:
    secret = new_secret()
    peer, server = await start_receiver(secret)
    receivers.append(server)
    factory = state.session_factory
    endpoint = await make_endpoint(
        factory, tenant.workspace_id, peer.url, event_types=["campaign.*"], secret=secret
    )
    async with transaction(factory, state.queue) as session:
        attempt = await send_test(
            session, tenant.workspace_id, endpoint.id, state.http, settings, "Hello"
        )
    assert (attempt.outcome, attempt.status_code, attempt.attempt) == ("success", 200, 1)
    [got] = peer.received
    assert got.verified == {secret: True}
    assert got.json()["type"] == "webhook_endpoint.test"
    assert got.json()["data"] == {"endpoint_id": str(endpoint.id), "message": "Hello"}
    [delivery] = await deliveries(factory, endpoint.id)
    assert delivery.status == "succeeded"

    peer.default = Answer(500)
    async with transaction(factory, state.queue) as session:
        failed = await send_test(
            session, tenant.workspace_id, endpoint.id, state.http, settings, "Again"
        )
    assert (failed.outcome, failed.status_code) == ("http_error", 500)
    later = (await deliveries(factory, endpoint.id))[1]
    assert (later.status, later.next_attempt_at) == ("failed", None)  # no retries

    with pytest.raises(NotFound):
        async with transaction(factory, state.queue) as session:
            await send_test(
                session, other_tenant.workspace_id, endpoint.id, state.http, settings, "x"
            )


async def test_purge_keeps_what_is_young_or_pending(
    state: AppState, settings: Settings, tenant: Tenant, receivers: list[asyncio.Server]
) -> None:
    peer, server = await start_receiver()
    receivers.append(server)
    factory = state.session_factory
    endpoint = await make_endpoint(factory, tenant.workspace_id, peer.url)
    ctx = worker_ctx(state, settings)
    start = clock.freeze()
    await emit_events(state, tenant.workspace_id, [unsubscribed()])  # delivered
    await deliver_endpoint(ctx, endpoint.id)
    peer.default = Answer(500)
    await emit_events(state, tenant.workspace_id, [unsubscribed()])  # left pending
    await deliver_endpoint(ctx, endpoint.id)
    async with transaction(factory) as session:  # parked far in the future
        await session.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = :t WHERE status = 'pending'"),
            {"t": start + timedelta(days=90)},
        )
    clock.freeze(start + timedelta(days=settings.webhooks.retention_days, seconds=1))
    await emit_events(state, tenant.workspace_id, [unsubscribed()])  # young

    assert await purge_expired(ctx) == {"attempts": 2, "events": 1}
    async with factory() as session:
        events = await session.scalar(select(func.count()).select_from(WebhookEvent))
        logged = await session.scalar(select(func.count()).select_from(WebhookAttempt))
    assert (events, logged) == (2, 0)
    assert [d.status for d in await deliveries(factory, endpoint.id)] == ["pending", "pending"]
