"""Delivery of webhook events: per-endpoint jobs, attempts, retries, replay, test sends.

Each endpoint is its own queue, worked by its own `deliver_webhooks:<endpoint id>` job, so a
dead endpoint only ever occupies its own job. A round: lease up to `batch_size` due rows
(committed before any request), attempt them concurrently (at most
`max_concurrency_per_endpoint` in flight, within the endpoint's rate limit), record every
outcome set-wise in one transaction. A job whose worker died leaves leased rows that come
back once `lease_until` passes. See docs/webhook-delivery.md.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor, record
from app.config import Settings, WebhookSettings
from app.core import send_rate
from app.core.clock import utcnow
from app.core.egress import GuardPolicy
from app.core.ids import new_id
from app.core.tasks import in_batches, task_session
from app.core.worker_context import WorkerContext
from app.outbox import repository as outbox_repository
from app.outbox.catalogue import WebhookEndpointDisabled, WebhookEndpointTest, envelope
from app.outbox.emit import emit, enqueue_delivery
from app.outbox.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.dispatch import repository
from app.webhooks.dispatch.repository import Finished, Leased
from app.webhooks.dispatch.schedule import MAX_ATTEMPTS, retry_delay
from app.webhooks.dispatch.sender import AttemptResult, Target, attempt, secrets_in_use
from app.webhooks.repository import DeliveryRepository, EndpointRepository

TIME_BUDGET_SECONDS = 30.0  # a job stops starting rounds after this; the next job continues
DISPATCH_SCAN_LIMIT = 10_000  # endpoints woken per dispatcher tick
GONE_REASON = "410 Gone"


@dataclass
class Report:
    attempted: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0  # leased, not attempted (rate limit or time budget): not attempts
    disabled: int = 0
    rounds: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "retried": self.retried,
            "failed": self.failed,
            "deferred": self.deferred,
            "disabled": self.disabled,
            "rounds": self.rounds,
        }


def _target(endpoint: WebhookEndpoint, now: datetime) -> Target:
    return Target(
        endpoint.id,
        endpoint.url,
        secrets_in_use(
            endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_expires_at, now
        ),
    )


# -- recording -------------------------------------------------------------------------------


def _after(row: Leased, result: AttemptResult, *, retry: bool) -> Finished:
    """The delivery's state after this attempt (attempt number `row.attempts + 1`)."""
    number = row.attempts + 1
    now = result.attempted_at
    if result.succeeded:
        return Finished(row.id, "succeeded", None, result.status_code, None, now)
    delay: timedelta | None = None
    if retry and not result.gone and number < MAX_ATTEMPTS:
        delay = result.retry_after if result.retry_after is not None else retry_delay(number)
    if delay is None:
        return Finished(row.id, "failed", None, result.status_code, result.error, now)
    return Finished(row.id, "pending", now + delay, result.status_code, result.error, None)


def _attempt_row(row: Leased, endpoint_id: uuid.UUID, result: AttemptResult) -> dict[str, Any]:
    return {
        "id": new_id(),
        "workspace_id": row.workspace_id,
        "delivery_id": row.id,
        "endpoint_id": endpoint_id,
        "attempt": row.attempts + 1,
        "attempted_at": result.attempted_at,
        "outcome": result.outcome,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "response_excerpt": result.response_excerpt,
        "error": result.error,
    }


async def _record(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    results: Sequence[tuple[Leased, AttemptResult]],
    *,
    settings: WebhookSettings,
    lease_until: datetime | None,
    retry: bool,
    report: Report,
) -> list[dict[str, Any]]:
    """Attempt rows, delivery states and the endpoint's health, in the caller's transaction.
    Returns the attempt rows inserted."""
    if not results:
        return []
    now = utcnow()
    attempts = [_attempt_row(row, endpoint.id, result) for row, result in results]
    finished = [_after(row, result, retry=retry) for row, result in results]
    await repository.insert_attempts(session, attempts)
    await repository.finish(session, finished, lease_until=lease_until, now=now)
    for row, (_, result) in zip(finished, results, strict=True):
        report.attempted += 1
        report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
        if row.status == "succeeded":
            report.succeeded += 1
        elif row.status == "failed":
            report.failed += 1
        else:
            report.retried += 1

    reason: str | None = None
    failing_since: datetime | None = None
    if any(result.succeeded for _, result in results):
        await repository.endpoint_succeeded(session, endpoint.id, now)
    else:
        failing_since = await repository.endpoint_failed(session, endpoint.id, now)
        limit = timedelta(days=settings.disable_after_failing_days)
        if failing_since is not None and now - failing_since >= limit:
            reason = (
                f"Every attempt failed since {_iso(failing_since)} "
                f"({settings.disable_after_failing_days:g} days)."
            )
    if any(result.gone for _, result in results):
        reason = GONE_REASON
    if reason is not None and await _disable(session, endpoint, reason, failing_since, now):
        report.disabled += 1
    return attempts


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _disable(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    reason: str,
    failing_since: datetime | None,
    now: datetime,
) -> bool:
    """Disable, audit and announce (to the workspace's other endpoints) exactly once."""
    disabled = await repository.disable(session, endpoint.id, reason, now)
    if disabled is None:
        return False
    await record(
        session,
        disabled.workspace_id,
        Actor.system(),
        "webhook_endpoint.disabled",
        entity_type="webhook_endpoint",
        entity_id=disabled.id,
        data={
            "reason": reason,
            "failing_since": None if failing_since is None else _iso(failing_since),
        },
    )
    await emit(
        session,
        disabled.workspace_id,
        WebhookEndpointDisabled(
            endpoint_id=disabled.id,
            url=disabled.url,
            reason=reason,
            failing_since=failing_since,
        ),
    )
    return True


# -- the job ---------------------------------------------------------------------------------


async def deliver_endpoint(ctx: WorkerContext, endpoint_id: uuid.UUID) -> dict[str, int]:
    """The body of the `deliver_webhooks` job: work the endpoint's due deliveries, round
    after round, until none is due or the time budget is spent."""
    settings = ctx["settings"].webhooks
    policy = GuardPolicy.from_settings(settings)
    report = Report()
    deadline = time.monotonic() + TIME_BUDGET_SECONDS
    while time.monotonic() < deadline:
        attempted = await _round(
            ctx, endpoint_id, settings=settings, policy=policy, deadline=deadline, report=report
        )
        if not attempted:
            break
    return report.as_dict()


async def _round(
    ctx: WorkerContext,
    endpoint_id: uuid.UUID,
    *,
    settings: WebhookSettings,
    policy: GuardPolicy,
    deadline: float,
    report: Report,
) -> bool:
    """One lease -> attempt -> record cycle; False when there was nothing to attempt."""
    now = utcnow()
    lease_until = now + timedelta(seconds=settings.lease_seconds)
    async with task_session(ctx) as session:
        endpoint = await repository.endpoint(session, endpoint_id)
        if endpoint is None or not endpoint.enabled:
            return False
        leased = await repository.lease_due(
            session, endpoint_id, now=now, lease_until=lease_until, limit=settings.batch_size
        )
    if not leased:
        return False
    report.rounds += 1
    # Start no attempt that could outlive the lease (its row would be attempted twice).
    leased_at = time.monotonic()
    window = max(settings.lease_seconds - settings.timeout_seconds - 2.0, 1.0)
    start_until = min(deadline, leased_at + window)

    granted = len(leased)
    if endpoint.rate_limit_per_second is not None:
        granted = await send_rate.acquire(
            ctx["redis"],
            f"webhook:{endpoint_id}",
            len(leased),
            endpoint.rate_limit_per_second,
            now,
        )
    allowed, limited = leased[:granted], leased[granted:]
    results = await _attempt_all(
        ctx["http"], endpoint, allowed, settings=settings, policy=policy, start_until=start_until
    )
    done = [(row, result) for row, result in zip(allowed, results, strict=True) if result]
    unstarted = [row.id for row, result in zip(allowed, results, strict=True) if not result]

    async with task_session(ctx) as session:
        await _record(
            session,
            endpoint,
            done,
            settings=settings,
            lease_until=lease_until,
            retry=True,
            report=report,
        )
        later = utcnow()
        await repository.release(
            session,
            [row.id for row in limited],
            lease_until=lease_until,
            next_attempt_at=send_rate.next_window(now),
            now=later,
        )
        await repository.release(
            session, unstarted, lease_until=lease_until, next_attempt_at=now, now=later
        )
    report.deferred += len(limited) + len(unstarted)
    return bool(done)


async def _attempt_all(
    http: httpx.AsyncClient,
    endpoint: WebhookEndpoint,
    rows: Sequence[Leased],
    *,
    settings: WebhookSettings,
    policy: GuardPolicy,
    start_until: float,
) -> list[AttemptResult | None]:
    """Attempt every row, at most `max_concurrency_per_endpoint` in flight; a row whose turn
    comes after `start_until` (monotonic) is not attempted (None)."""
    gate = asyncio.Semaphore(settings.max_concurrency_per_endpoint)

    async def one(row: Leased) -> AttemptResult | None:
        async with gate:
            if time.monotonic() > start_until:
                return None
            now = utcnow()
            return await attempt(
                http,
                _target(endpoint, now),
                row.event_id,
                row.payload,
                now=now,
                timeout=settings.timeout_seconds,
                policy=policy,
            )

    return list(await asyncio.gather(*(one(row) for row in rows)))


async def dispatch_due(ctx: WorkerContext) -> int:
    """Cron: enqueue `deliver_webhooks` for every endpoint with due, unleased work (the job
    id is the endpoint's, so an endpoint whose job is queued or running is not doubled)."""
    async with task_session(ctx) as session:
        endpoints = await repository.due_endpoints(session, utcnow(), DISPATCH_SCAN_LIMIT)
        for endpoint_id in endpoints:
            enqueue_delivery(session, endpoint_id)
    return len(endpoints)


async def purge_expired(ctx: WorkerContext, limit: int = 10_000) -> dict[str, int]:
    """Daily: attempts and events older than `retention_days` (an event with a pending
    delivery is kept; its finished deliveries go with it)."""
    cutoff = utcnow() - timedelta(days=ctx["settings"].webhooks.retention_days)
    return await in_batches(
        ctx,
        ("attempts", "events"),
        limit,
        lambda session: repository.purge(session, cutoff, limit),
    )


# -- the API ---------------------------------------------------------------------------------


async def replay_delivery(
    session: AsyncSession, workspace_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Queue one delivery again now (same `webhook-id`), whatever its state; 404 if not the
    workspace's. Enqueues the endpoint's job after commit.

    The delivery starts a fresh schedule: `attempts` goes back to 0 (the attempt log keeps
    every earlier attempt; new ones are numbered from 1 again)."""
    delivery = await DeliveryRepository(session, workspace_id).locked_or_404(delivery_id)
    now = utcnow()
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.lease_until = None
    delivery.completed_at = None
    delivery.updated_at = now
    await session.flush()
    enqueue_delivery(session, delivery.endpoint_id)
    return delivery


async def replay_failed(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID, since: datetime
) -> int:
    """Queue again every failed delivery of the endpoint completed at or after `since`;
    returns how many. 404 if the endpoint is not the workspace's."""
    endpoint = await EndpointRepository(session, workspace_id).get_or_404(endpoint_id)
    count = await repository.requeue_failed(session, workspace_id, endpoint.id, since, utcnow())
    if count:
        enqueue_delivery(session, endpoint.id)
    return count


async def send_test(  # noqa: PLR0917 - the API's contract
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    http: httpx.AsyncClient,
    settings: Settings,
    message: str,
) -> WebhookAttempt:
    """Emit a `webhook_endpoint.test` event to this endpoint only and attempt it at once
    (inline, recorded like any attempt; no retries). 404 if not the workspace's.

    The event goes to this endpoint whatever its filter, and even while it is disabled
    (check a fixed receiver before re-enabling); the delivery is finished either way."""
    endpoint = await EndpointRepository(session, workspace_id).get_or_404(endpoint_id)
    now = utcnow()
    event_id, delivery_id = new_id(), new_id()
    data = WebhookEndpointTest(endpoint_id=endpoint.id, message=message)
    await outbox_repository.insert_outbox(
        session,
        [
            {
                "id": event_id,
                "workspace_id": workspace_id,
                "type": data.TYPE,
                "payload": envelope(data, now),
                "occurred_at": now,
            }
        ],
        [
            {
                "id": delivery_id,
                "workspace_id": workspace_id,
                "endpoint_id": endpoint.id,
                "event_id": event_id,
                "event_type": data.TYPE,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    # The stored payload (JSONB's key order): the bytes a later replay would send too.
    payload = await repository.event_payload(session, event_id)
    row = Leased(delivery_id, workspace_id, event_id, 0, payload)
    webhooks = settings.webhooks
    result = await attempt(
        http,
        _target(endpoint, now),
        event_id,
        payload,
        now=now,
        timeout=webhooks.timeout_seconds,
        policy=GuardPolicy.from_settings(webhooks),
    )
    inserted = await _record(
        session,
        endpoint,
        [(row, result)],
        settings=webhooks,
        lease_until=None,
        retry=False,
        report=Report(),
    )
    found = await session.get(WebhookAttempt, inserted[0]["id"])
    assert found is not None  # inserted above, same transaction
    await session.refresh(endpoint)
    return found
