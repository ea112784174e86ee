"""Leases, duplicates, the shared rate limit and the `deliver_due` scan (log provider and
the lease statement itself; the network providers have their own files)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import text

from app.channels import outbox as outbox_sql
from app.channels.delivery import SEND_METRICS_KEY, deliver
from app.channels.tasks import deliver_batch, deliver_due
from app.config import ChannelSettings, HttpProviderSettings
from app.core.clock import clock
from app.core.db import transaction
from app.core.worker_context import WorkerContext
from tests.channels.conftest import HttpReceiver, MakeCtx, Outbox

LEASE = timedelta(seconds=ChannelSettings().sending_lease_seconds)


async def test_log_provider_records_and_marks_sent(make_ctx: MakeCtx, outbox: Outbox) -> None:
    clock.freeze()
    first, second = (
        await outbox.message(),
        await outbox.message(channel="sms", content={"text": "x"}),
    )

    report = await deliver(make_ctx(), [first.id, second.id])

    assert report.sent == 2
    for message in (first, second):
        stored = await outbox.get(message.id)
        assert (stored.status, stored.provider) == ("sent", "log")
        assert stored.provider_message_id == f"log-{message.id}"


async def test_a_duplicate_delivery_sends_nothing(make_ctx: MakeCtx, outbox: Outbox) -> None:
    clock.freeze()
    message = await outbox.message()
    ctx = make_ctx()

    assert (await deliver(ctx, [message.id])).sent == 1
    assert (await deliver(ctx, [message.id])).sent == 0
    # and a message leased by someone else is not taken either
    other = await outbox.message()
    now = clock.now()
    async with transaction(ctx["session_factory"]) as session:
        await outbox_sql.lease(
            session,
            [other.id],
            now=now,
            lease_until=now + LEASE,
            email_provider="log",
            sms_provider="log",
        )
    assert (await deliver(ctx, [other.id])).sent == 0


def _http(make_ctx: MakeCtx, receiver: HttpReceiver, **extra: Any) -> WorkerContext:
    return make_ctx(email_provider="http", http=HttpProviderSettings(url=receiver.url), **extra)


async def test_over_the_rate_limit_a_message_waits_for_the_next_window(
    make_ctx: MakeCtx, outbox: Outbox, receiver: HttpReceiver
) -> None:
    now = clock.freeze()
    ctx = _http(make_ctx, receiver, rate_per_second=1)
    first, second = await outbox.message(), await outbox.message()

    assert (await deliver(ctx, [first.id])).sent == 1
    report = await deliver(ctx, [second.id])

    assert (report.sent, report.deferred) == (0, 1)
    assert len(receiver.requests) == 1
    waiting = await outbox.get(second.id)
    assert waiting.status == "queued"
    assert waiting.attempts == 0  # waiting for the limit is not an attempt
    assert waiting.next_attempt_at == now.replace(microsecond=0) + timedelta(seconds=1)

    clock.advance(timedelta(seconds=1))
    assert (await deliver(ctx, [second.id])).sent == 1


async def test_the_limit_is_shared_through_redis_and_batches_get_what_is_left(
    make_ctx: MakeCtx, outbox: Outbox, receiver: HttpReceiver
) -> None:
    clock.freeze()
    ids = [(await outbox.message()).id for _ in range(3)]

    # Two workers' contexts (separate settings objects) share one window in Redis.
    assert (await deliver(_http(make_ctx, receiver, rate_per_second=2), ids[:1])).sent == 1
    report = await deliver(_http(make_ctx, receiver, rate_per_second=2), ids[1:])

    assert (report.sent, report.deferred) == (1, 1)


async def test_the_log_provider_is_not_throttled(make_ctx: MakeCtx, outbox: Outbox) -> None:
    clock.freeze()
    ids = [(await outbox.message()).id for _ in range(3)]

    report = await deliver(make_ctx(rate_per_second=1), ids)

    assert (report.sent, report.deferred) == (3, 0)


async def _queued_batches(ctx: WorkerContext) -> list[list[str]]:
    jobs = await ctx["redis"].queued_jobs(queue_name=ctx["queue"].queue_name)
    return [cast(list[str], job.args[0]) for job in jobs if job.function == "deliver_batch"]


async def test_deliver_due_redrives_lost_queued_messages(make_ctx: MakeCtx, outbox: Outbox) -> None:
    clock.freeze()
    ctx = make_ctx()
    lost = await outbox.message()  # created, but its delivery call never happened
    later = await outbox.message()
    # `later` is not due yet (a retry an hour away): left alone.
    async with ctx["session_factory"]() as session:
        await session.execute(
            text("UPDATE messages SET next_attempt_at = :at WHERE id = :id"),
            {"at": clock.now() + timedelta(hours=1), "id": later.id},
        )
        await session.commit()

    result = await deliver_due(cast(dict[str, Any], ctx))

    assert result["due"] == 1
    [batch] = await _queued_batches(ctx)
    assert batch == [str(lost.id)]
    await deliver_batch(cast(dict[str, Any], ctx), batch)
    assert (await outbox.get(lost.id)).status == "sent"
    assert (await outbox.get(later.id)).status == "queued"


async def test_a_stale_smtp_send_becomes_unknown_and_is_never_resent(
    make_ctx: MakeCtx, outbox: Outbox
) -> None:
    clock.freeze()
    ctx = make_ctx()
    smtp, http = await outbox.message(), await outbox.message(channel="sms", content={"text": "x"})
    now = clock.now()
    # Two workers leased these and died mid-send.
    async with transaction(ctx["session_factory"]) as session:
        await outbox_sql.lease(
            session,
            [smtp.id, http.id],
            now=now,
            lease_until=now + LEASE,
            email_provider="smtp",
            sms_provider="http",
        )

    # Before the lease ends nothing moves.
    assert (await deliver_due(cast(dict[str, Any], ctx)))["unknown"] == 0
    clock.advance(LEASE + timedelta(seconds=1))
    result = await deliver_due(cast(dict[str, Any], ctx))

    assert (result["unknown"], result["requeued"]) == (1, 1)
    lost = await outbox.get(smtp.id)
    assert (lost.status, lost.next_attempt_at) == ("unknown", None)
    assert lost.error is not None
    assert "may have accepted" in lost.error
    requeued = await outbox.get(http.id)
    assert requeued.status == "queued"
    counts = await cast(Awaitable[dict[bytes, bytes]], ctx["redis"].hgetall(SEND_METRICS_KEY))
    assert counts[b"email|unknown"] == b"1"
    # the idempotent one is due again and goes out under the same id; the unknown one never
    await deliver(ctx, [smtp.id, http.id])
    assert (await outbox.get(smtp.id)).status == "unknown"
    assert (await outbox.get(http.id)).status == "sent"


async def test_unknown_ids_are_ignored(make_ctx: MakeCtx) -> None:
    report = await deliver(make_ctx(), [uuid.uuid4()])
    assert report.sent == 0


async def test_a_message_interrupted_on_every_attempt_ends_failed(
    make_ctx: MakeCtx, outbox: Outbox
) -> None:
    """An idempotent send whose worker dies each time is re-driven, but not forever."""
    clock.freeze()
    ctx = make_ctx()
    message = await outbox.message(channel="sms", content={"text": "x"})
    attempts = ChannelSettings().max_attempts
    for attempt in range(1, attempts + 1):
        now = clock.now()
        async with transaction(ctx["session_factory"]) as session:
            leased = await outbox_sql.lease(
                session,
                [message.id],
                now=now,
                lease_until=now + LEASE,
                email_provider="smtp",
                sms_provider="http",
            )
            assert len(leased) == 1, attempt
        clock.advance(LEASE + timedelta(seconds=1))
        await deliver_due(cast(dict[str, Any], ctx))
        row = await outbox.get(message.id)
        assert row.attempts == attempt
    assert (row.status, row.next_attempt_at) == ("failed", None)
    assert row.error == "the send was interrupted on every attempt"
