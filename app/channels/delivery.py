"""Delivery of queued messages through the channel providers.

The engine calls `deliver(ctx, ids)` right after the transaction that created the messages
commits; the `deliver_due` scan re-drives whatever that call did not finish. Three steps:

1. lease: queued -> sending (conditional UPDATE ... RETURNING; a duplicate call gets
   nothing), committed before any send, with `next_attempt_at` as the lease's end;
2. send, outside any transaction, per provider within the shared rate limit;
3. record the outcomes set-wise in one transaction.
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import outbox, ratelimit
from app.channels.outbox import Leased
from app.channels.providers import provider_for
from app.channels.providers.base import (
    OutboundMessage,
    Outcome,
    PermanentError,
    RetryableError,
    UnknownOutcomeError,
)
from app.channels.tracking import message_links
from app.config import Settings
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.observability import SENDS_KEY
from app.core.worker_context import WorkerContext
from app.sequences.engine.exits import fail_enrollments

log = structlog.get_logger("herald.channels")

BASE_BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 3600.0
SEND_METRICS_KEY = SENDS_KEY  # hash "channel|status" -> count (all workers)
SEND_FAILURE_REASON = "send_failed"
UNLIMITED_PROVIDERS = frozenset({"log", "webhook"})
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    deferred: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # "channel|status" -> n

    def count(self, channel: str, status: str, n: int = 1) -> None:
        key = f"{channel}|{status}"
        self.counts[key] = self.counts.get(key, 0) + n


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """min(2^attempts * 30 s, 1 h), with +-20% jitter so a failed burst does not retry in
    lockstep; a peer's Retry-After is honoured when it asks for longer."""
    delay = min(2**attempts * BASE_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
    delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)


def with_open_pixel(content: dict[str, Any], pixel_url: str) -> dict[str, Any]:
    """The email's html with the open pixel before `</body>` (or at the end)."""
    body = content.get("html")
    if not isinstance(body, str) or not body:
        return content
    tag = f'<img src="{html.escape(pixel_url)}" width="1" height="1" alt="" style="display:none">'
    ends = list(_BODY_END.finditer(body))
    if ends:
        at = ends[-1].start()
        body = body[:at] + tag + body[at:]
    else:
        body += tag
    return {**content, "html": body}


def _outbound(settings: Settings, row: Leased, secrets: dict[uuid.UUID, str]) -> OutboundMessage:
    links = message_links(settings, row.id)
    content = row.content
    if row.channel == "email":
        content = with_open_pixel(content, links.open_pixel_url)
    return OutboundMessage(
        id=row.id,
        workspace_id=row.workspace_id,
        channel=row.channel,
        recipient=row.recipient,
        content=content,
        unsubscribe_url=links.unsubscribe_url,
        signing_secret=secrets.get(row.sequence_id) if row.channel == "webhook" else None,
    )


async def deliver(ctx: WorkerContext, message_ids: Sequence[uuid.UUID]) -> DeliveryReport:
    """Send these messages if they are still queued and due; record every outcome."""
    report = DeliveryReport()
    if not message_ids:
        return report
    settings = ctx["settings"]
    now = utcnow()
    async with transaction(ctx["session_factory"]) as session:
        leased = await outbox.lease(
            session,
            message_ids,
            now=now,
            # A send not recorded by then is presumed lost with its worker (`deliver_due`).
            lease_until=now + timedelta(seconds=settings.channels.sending_lease_seconds),
            email_provider=settings.channels.email_provider,
            sms_provider=settings.channels.sms_provider,
        )
        webhook_sequences = [row.sequence_id for row in leased if row.channel == "webhook"]
        secrets = await outbox.signing_secrets(session, webhook_sequences)
    if not leased:
        return report

    groups: dict[str, list[Leased]] = {}
    for row in leased:
        groups.setdefault(row.provider, []).append(row)
    to_send: dict[str, list[OutboundMessage]] = {}
    deferred: list[Leased] = []
    for name, rows in groups.items():
        allowed = await _allowance(ctx["redis"], settings, name, len(rows), now)
        to_send[name] = [_outbound(settings, row, secrets) for row in rows[:allowed]]
        deferred.extend(rows[allowed:])

    results = await asyncio.gather(
        *(
            provider_for(settings, ctx["http"], name).send_many(messages)
            for name, messages in to_send.items()
            if messages
        )
    )
    outcomes = [outcome for batch in results for outcome in batch]
    attempts = {row.id: row.attempts for row in leased}
    async with transaction(ctx["session_factory"]) as session:
        await _record(
            session,
            settings,
            outcomes=outcomes,
            attempts=attempts,
            deferred=deferred,
            report=report,
        )
    await _count(ctx["redis"], report)
    return report


async def _allowance(
    redis: Redis, settings: Settings, provider: str, wanted: int, now: datetime
) -> int:
    # The limit protects a peer. `log` has none (and throttling it would only distort
    # engine throughput runs). Webhook steps go to many different receivers: one shared cap
    # would let one sequence's calls starve another's; their limits come with the webhooks
    # work.
    if provider in UNLIMITED_PROVIDERS:
        return wanted
    return await ratelimit.acquire(redis, provider, wanted, settings.channels.rate_per_second, now)


async def _record(
    session: AsyncSession,
    settings: Settings,
    *,
    outcomes: Sequence[Outcome],
    attempts: dict[uuid.UUID, int],
    deferred: Sequence[Leased],
    report: DeliveryReport,
) -> None:
    now = utcnow()
    sent: list[tuple[uuid.UUID, str | None, dict[str, Any] | None]] = []
    retry: list[tuple[uuid.UUID, datetime, str, dict[str, Any] | None]] = []
    failed: list[tuple[uuid.UUID, str, dict[str, Any] | None]] = []
    unknown: list[tuple[uuid.UUID, str, dict[str, Any] | None]] = []
    channel_of: dict[uuid.UUID, str] = {}
    for outcome in outcomes:
        message, error = outcome.message, outcome.error
        channel_of[message.id] = message.channel
        if outcome.result is not None:
            sent.append((message.id, outcome.result.provider_message_id, outcome.result.response))
        elif isinstance(error, RetryableError):
            delay = backoff(attempts.get(message.id, 0), error.retry_after_seconds)
            retry.append((message.id, now + delay, error.reason, error.response))
        elif isinstance(error, UnknownOutcomeError):
            unknown.append((message.id, error.reason, error.response))
        else:
            assert isinstance(error, PermanentError)
            failed.append((message.id, error.reason, error.response))

    marked = await outbox.mark_sent(session, sent, now)
    spent_rows = await outbox.mark_retry(session, retry, now, settings.channels.max_attempts)
    permanent_rows = await outbox.mark_final(session, "failed", failed, now)
    lost_rows = await outbox.mark_final(session, "unknown", unknown, now)
    if deferred:
        await outbox.release(session, [row.id for row in deferred], ratelimit.next_window(now), now)
    # One emission call for the whole batch (message.sent / failed / unknown).
    await outbox.emit_settled(session, [*marked, *spent_rows, *permanent_rows, *lost_rows], now)
    spent = [row.id for row in spent_rows]
    permanent = [row.id for row in permanent_rows]
    lost = [row.id for row in lost_rows]
    await _fail_enrollments(session, [*permanent, *spent], now)

    report.sent, report.retried = len(sent), len(retry) - len(spent)
    report.failed, report.unknown, report.deferred = (
        len(permanent) + len(spent),
        len(lost),
        len(deferred),
    )
    for message_id, *_ in sent:
        report.count(channel_of[message_id], "sent")
    for message_id in [*permanent, *spent]:
        report.count(channel_of[message_id], "failed")
    for message_id in lost:
        report.count(channel_of[message_id], "unknown")
    for message_id, _, reason, _ in retry:
        if message_id not in spent:
            report.count(channel_of[message_id], "retried")
            log.info("send_retry", message_id=str(message_id), error=reason)
    for message_id, reason, _ in [*failed, *unknown]:
        log.warning("send_not_delivered", message_id=str(message_id), error=reason)


async def _fail_enrollments(
    session: AsyncSession, message_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Sequences set to `on_send_failure: fail` fail the enrollment of a failed message."""
    targets = await outbox.enrollments_failing_on_send_failure(session, message_ids)
    if not targets:
        return
    for workspace_id, enrollment_ids in targets.items():
        await fail_enrollments(session, workspace_id, enrollment_ids, SEND_FAILURE_REASON, now)


async def _count(redis: Redis, report: DeliveryReport) -> None:
    if not report.counts:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for key, n in report.counts.items():
            pipe.hincrby(SEND_METRICS_KEY, key, n)
        await pipe.execute()


async def count_statuses(redis: Redis, counts: dict[str, int]) -> None:
    """Add counts recorded outside `deliver` (the lease scan's `unknown`)."""
    await _count(redis, DeliveryReport(counts=counts))
