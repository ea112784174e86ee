"""Delivery of queued messages through the channel providers: claim only what is offered.

The engine calls `deliver(ctx, ids)` right after the transaction that created the messages
commits; `deliver_due` and deferred `deliver_channel` jobs re-drive whatever that call did
not finish. `deliver` drains the channels of those messages, oldest due first (FIFO per
channel), with a few concurrent lanes (one per SMTP connection allowed). Each lane:

1. books the provider's next send slot in the shared limiter (`send_rate.reserve`, GCRA in
   Redis) and waits for it: held-back messages go at the next instant they may, by the
   worker holding the slot, never by a sweep;
2. claims the channel's oldest due message (`queued -> sending`, SKIP LOCKED), committed,
   right before it is handed to the provider: a crash leaves every message not yet offered
   `queued`;
3. sends it outside any transaction;
4. hands the outcome, stamped with the provider's acceptance time (`sent_at`), to the
   recorder, which writes outcomes as they come (set-wise when several are pending: one
   statement per outcome kind) and in the same transaction wakes the enrollments waiting
   on those sends.

One drain per (channel, provider) runs in a worker process at a time; a `deliver` call that
finds one running only nudges it (it claims from the table, so it sees the new rows).
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import delivery_repository
from app.channels.delivery_repository import Leased
from app.channels.providers import provider_for, provider_name
from app.channels.providers.base import (
    OutboundMessage,
    Outcome,
    PermanentError,
    Provider,
    RetryableError,
    UnknownOutcomeError,
)
from app.channels.settled import announce_settled
from app.channels.signing_secrets import signing_secrets
from app.channels.tracking import message_links
from app.config import Settings
from app.core import send_rate
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.jobs import enqueue
from app.core.observability import SENDS_KEY
from app.core.tasks import task_session
from app.core.worker_context import WorkerContext

log = structlog.get_logger("herald.channels")

BASE_BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 3600.0
SEND_METRICS_KEY = SENDS_KEY  # hash "channel|status" -> count (all workers)
UNLIMITED_PROVIDERS = frozenset({"log", "webhook"})
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# A drain stops after this long (a job must end: arq's timeouts) and hands the rest of the
# backlog to a `deliver_channel` job, which any worker may take.
DRAIN_SECONDS = 50.0
# `log` has no peer to protect or hold back from: it claims this many at a time.
LOG_CLAIM = 100
RECORD_BATCH = 200  # outcomes written per transaction at most
# Outcomes arriving within this span of the first pending one share a write (and one
# wake-up job for their enrollments): at high rates a write per message would cost more
# than the send; a crash in this span leaves those few SMTP messages `unknown`.
RECORD_WINDOW_SECONDS = 0.05
# Retries of an outcome write while the database is unreachable: the outcomes are in
# memory; after this the lease scan settles the messages instead (SMTP: `unknown`).
RECORD_RETRY_SECONDS = 120.0
# A retry due within this span gets a deferred job; later ones are found by `deliver_due`.
FOLLOW_UP_SECONDS = 5.0
_DB_DOWN = (OSError, DBAPIError, InterfaceError, OperationalError)

# (channel, provider) -> the nudge of the drain running in this process.
_draining: dict[tuple[str, str], asyncio.Event] = {}


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # "channel|status" -> n

    def count(self, channel: str, status: str, n: int = 1) -> None:
        key = f"{channel}|{status}"
        self.counts[key] = self.counts.get(key, 0) + n

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.unknown += other.unknown
        for key, n in other.counts.items():
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
    """Drain the channels these messages are queued on (they and anything due before them
    go, oldest due first); every outcome is recorded."""
    report = DeliveryReport()
    if not message_ids:
        return report
    async with ctx["session_factory"]() as session:
        channels = await delivery_repository.channels_of(session, message_ids)
    for part in await asyncio.gather(*(drain(ctx, channel) for channel in channels)):
        report.add(part)
    return report


async def drain(ctx: WorkerContext, channel: str) -> DeliveryReport:
    """Send the channel's due messages until none is left (or `DRAIN_SECONDS` passed)."""
    settings = ctx["settings"]
    name = provider_name(settings, channel)
    key = (channel, name)
    report = DeliveryReport()
    running = _draining.get(key)
    if running is not None:  # this process drains it already: it will see the new rows
        running.set()
        return report
    more = _draining[key] = asyncio.Event()
    deadline = time.monotonic() + DRAIN_SECONDS
    provider = provider_for(settings, ctx["http"], name)
    lanes = 1 if name == "log" else provider.concurrency
    try:
        async with _Recorder(ctx, report) as recorder, provider.connections():
            while True:
                more.clear()
                lane = _Lane(ctx, channel, provider, recorder, deadline)
                errors = [
                    error
                    for error in await asyncio.gather(
                        *(lane.run() for _ in range(lanes)), return_exceptions=True
                    )
                    if isinstance(error, BaseException)
                ]
                if errors:
                    raise errors[0]
                # No await between this check and leaving the registry: a nudge either
                # lands before it (another round) or finds no drain and starts one.
                if not more.is_set() or time.monotonic() >= deadline:
                    del _draining[key]
                    break
    finally:
        if _draining.get(key) is more:
            del _draining[key]
    await _follow_up(ctx, channel, overran=time.monotonic() >= deadline)
    await _count(ctx["redis"], report)
    return report


class _Lane:
    """Book a slot, claim the oldest due message, send it, hand its outcome over; again."""

    def __init__(
        self,
        ctx: WorkerContext,
        channel: str,
        provider: Provider,
        recorder: _Recorder,
        deadline: float,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx["settings"]
        self.channel = channel
        self.provider = provider
        self.recorder = recorder
        self.deadline = deadline
        self.limited = provider.name not in UNLIMITED_PROVIDERS
        self.claim_size = LOG_CLAIM if provider.name == "log" else 1
        self.lease = timedelta(seconds=self.settings.channels.sending_lease_seconds)

    async def run(self) -> None:
        while time.monotonic() < self.deadline:
            if self.limited and not await self._slot():
                continue
            rows, secrets = await self._claim()
            if not rows:
                return
            for row in rows:
                outcome = await self.provider.attempt(_outbound(self.settings, row, secrets))
                self.recorder.add(outcome, utcnow(), row.attempts)

    async def _slot(self) -> bool:
        """Wait for a booked slot (True), or for the moment one may be booked (False)."""
        rate = self.settings.channels.rate_per_second
        booked, wait = await send_rate.reserve(self.ctx["redis"], self.provider.name, rate)
        if wait > 0:
            await asyncio.sleep(wait)
        return booked

    async def _claim(self) -> tuple[list[Leased], dict[uuid.UUID, str]]:
        now = utcnow()
        async with transaction(self.ctx["session_factory"]) as session:
            rows = await delivery_repository.claim(
                session,
                self.channel,
                self.provider.name,
                now=now,
                lease_until=now + self.lease,
                limit=self.claim_size,
            )
            webhook_sequences = [row.sequence_id for row in rows if row.channel == "webhook"]
            secrets = await signing_secrets(session, webhook_sequences)
        return rows, secrets


@dataclass(frozen=True)
class _Result:
    outcome: Outcome
    at: datetime  # when the provider answered (accepted: `sent_at`)
    attempts: int


class _Recorder:
    """Writes outcomes as they come, in one transaction per write (set-wise when several
    wait), retrying while the database is unreachable."""

    def __init__(self, ctx: WorkerContext, report: DeliveryReport) -> None:
        self.ctx = ctx
        self.report = report
        self.pending: list[_Result] = []
        self.ready = asyncio.Event()
        self.closing = False
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Recorder:
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closing = True
        self.ready.set()
        assert self.task is not None
        await self.task

    def add(self, outcome: Outcome, at: datetime, attempts: int) -> None:
        self.pending.append(_Result(outcome, at, attempts))
        self.ready.set()

    async def _run(self) -> None:
        while True:
            await self.ready.wait()
            if not self.closing:
                await asyncio.sleep(RECORD_WINDOW_SECONDS)
            self.ready.clear()
            while self.pending:
                batch = self.pending[:RECORD_BATCH]
                del self.pending[:RECORD_BATCH]
                await self._write(batch)
            if self.closing and not self.pending:
                return

    async def _write(self, batch: list[_Result]) -> None:
        give_up = time.monotonic() + RECORD_RETRY_SECONDS
        delay = 0.2
        while True:
            try:
                async with task_session(self.ctx) as session:
                    await _record(session, self.ctx["settings"], batch, self.report)
                return
            except _DB_DOWN as error:
                if time.monotonic() >= give_up:
                    log.error("send_outcomes_not_recorded", count=len(batch), error=str(error))
                    return
                log.warning("send_outcomes_retry", count=len(batch), error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


async def _follow_up(ctx: WorkerContext, channel: str, *, overran: bool) -> None:
    """A drain that ran out of time hands over at once; a retry falling due soon gets a job
    deferred to that instant (later ones: `deliver_due`)."""
    async with task_session(ctx) as session:
        if overran:
            enqueue(session, "deliver_channel", channel, job_key=(channel, uuid.uuid4()))
            return
        due = await delivery_repository.next_due(session, channel)
        if due is None:
            return
        delay = (due - utcnow()).total_seconds()
        if delay <= FOLLOW_UP_SECONDS:
            enqueue(
                session,
                "deliver_channel",
                channel,
                job_key=(channel, due.timestamp()),
                defer_by_seconds=delay if delay > 0 else None,
            )


async def _record(
    session: AsyncSession, settings: Settings, batch: Sequence[_Result], report: DeliveryReport
) -> None:
    now = utcnow()
    sent: list[tuple[uuid.UUID, str | None, dict[str, Any] | None, datetime]] = []
    retry: list[tuple[uuid.UUID, datetime, str, dict[str, Any] | None]] = []
    failed: list[tuple[uuid.UUID, str, dict[str, Any] | None]] = []
    unknown: list[tuple[uuid.UUID, str, dict[str, Any] | None]] = []
    channel_of: dict[uuid.UUID, str] = {}
    for item in batch:
        message, error = item.outcome.message, item.outcome.error
        channel_of[message.id] = message.channel
        result = item.outcome.result
        if result is not None:
            sent.append((message.id, result.provider_message_id, result.response, item.at))
        elif isinstance(error, RetryableError):
            delay = backoff(item.attempts, error.retry_after_seconds)
            retry.append((message.id, item.at + delay, error.reason, error.response))
        elif isinstance(error, UnknownOutcomeError):
            unknown.append((message.id, error.reason, error.response))
        else:
            assert isinstance(error, PermanentError)
            failed.append((message.id, error.reason, error.response))

    marked = await delivery_repository.mark_sent(session, sent, now)
    spent_rows = await delivery_repository.mark_retry(
        session, retry, now, settings.channels.max_attempts
    )
    permanent_rows = await delivery_repository.mark_final(session, "failed", failed, now)
    lost_rows = await delivery_repository.mark_final(session, "unknown", unknown, now)
    settled = [*marked, *spent_rows, *permanent_rows, *lost_rows]
    await announce_settled(session, settled, now)
    spent = {row.id for row in spent_rows}

    report.sent += len(marked)
    report.retried += len(retry) - len(spent)
    report.failed += len(permanent_rows) + len(spent_rows)
    report.unknown += len(lost_rows)
    for row in settled:
        report.count(row.channel, row.status)
    for message_id, _, reason, _ in retry:
        if message_id not in spent:
            report.count(channel_of[message_id], "retried")
            log.info("send_retry", message_id=str(message_id), error=reason)
    for message_id, reason, _ in [*failed, *unknown]:
        log.warning("send_not_delivered", message_id=str(message_id), error=reason)


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
