"""Claims, duplicates, the shared rate limit and the `deliver_due` scan (log and HTTP
providers and the claim statement itself; SMTP has its own files)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import text

from app.channels import delivery_repository as outbox_sql
from app.channels.delivery import SEND_METRICS_KEY, deliver
from app.channels.tasks import deliver_channel, deliver_due
from app.config import ChannelSettings, HttpProviderSettings
from app.core import send_rate
from app.core.clock import clock
from app.core.db import transaction
from app.core.worker_context import WorkerContext
from tests.fixtures.channels import HttpReceiver, MakeCtx, Outbox

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
        [claimed] = await outbox_sql.claim(
            session, "email", "log", now=now, lease_until=now + LEASE
        )
    assert claimed.id == other.id
    assert (await deliver(ctx, [other.id])).sent == 0


def _http(make_ctx: MakeCtx, receiver: HttpReceiver, **extra: Any) -> WorkerContext:
    return make_ctx(email_provider="http", http=HttpProviderSettings(url=receiver.url), **extra)


async def test_over_the_rate_limit_the_worker_sends_each_message_at_its_slot(
    make_ctx: MakeCtx, outbox: Outbox, receiver: HttpReceiver
) -> None:
    """Held-back messages are not parked for a sweep: the drain holding them sends each at
    the next instant the limit allows, oldest due first, until none is left."""
    clock.freeze()
    ctx = _http(make_ctx, receiver, rate_per_second=20)
    ids = [(await outbox.message()).id for _ in range(8)]

    report = await deliver(ctx, ids[:1])  # one call drains the channel

    assert report.sent == 8
    assert [uuid.UUID(r.json()["id"]) for r in receiver.requests] == ids  # FIFO
    gaps = [b.at - a.at for a, b in itertools.pairwise(receiver.requests)]
    # GCRA spacing: 1/20 s between sends (a little scheduling jitter either way).
    assert min(gaps) > 0.035, gaps
    assert receiver.requests[-1].at - receiver.requests[0].at >= 7 * 0.05 - 0.02
    for message_id in ids:
        stored = await outbox.get(message_id)
        assert (stored.status, stored.attempts) == ("sent", 1)


async def test_the_limit_is_one_timeline_shared_through_redis(make_ctx: MakeCtx) -> None:
    """Two workers booking slots of one provider get consecutive slots 1/rate apart; a slot
    beyond the horizon is not booked (ask again later)."""
    redis = make_ctx()["redis"]
    await redis.delete(send_rate.key("bench-peer"))
    waits = [(await send_rate.reserve(redis, "bench-peer", 10)) for _ in range(12)]

    # Slots at +0, +0.1, ... +1.0 s (the horizon) are booked; +1.1 s is not.
    assert all(booked for booked, _ in waits[:11])
    assert waits[0][1] < 0.05
    assert 0.85 < waits[10][1] <= send_rate.HORIZON_SECONDS
    for (_, earlier), (_, later) in itertools.pairwise(waits[:11]):
        assert 0.09 < later - earlier < 0.11
    refused, retry_in = waits[11]
    assert not refused
    assert 0 < retry_in <= 0.11


async def test_a_cancelled_drain_leaves_unoffered_messages_queued(
    make_ctx: MakeCtx, outbox: Outbox, receiver: HttpReceiver
) -> None:
    """A worker stopped mid-drain: only what was handed to the provider left `queued`."""
    clock.freeze()
    ctx = _http(make_ctx, receiver, rate_per_second=20)
    ids = [(await outbox.message()).id for _ in range(20)]
    running = asyncio.create_task(deliver(ctx, ids))
    async with asyncio.timeout(10):
        while len(receiver.requests) < 3:
            await asyncio.sleep(0.01)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running

    statuses = [(await outbox.get(message_id)).status for message_id in ids]
    offered = len(receiver.requests)
    assert statuses.count("sent") + statuses.count("sending") == offered
    assert statuses.count("sending") <= 1  # at most the one in flight
    assert statuses.count("queued") == 20 - offered >= 15
    # A new worker takes the rest, in order, none twice.
    await deliver(ctx, ids)
    assert sorted(r.json()["id"] for r in receiver.requests) == sorted(map(str, ids))


async def test_the_log_provider_is_not_throttled(make_ctx: MakeCtx, outbox: Outbox) -> None:
    clock.freeze()
    ids = [(await outbox.message()).id for _ in range(3)]

    report = await deliver(make_ctx(rate_per_second=1), ids)

    assert report.sent == 3


async def _queued_drains(ctx: WorkerContext) -> list[str]:
    jobs = await ctx["redis"].queued_jobs(queue_name=ctx["queue"].queue_name)
    return [cast(str, job.args[0]) for job in jobs if job.function == "deliver_channel"]


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

    assert result["due_channels"] == 1
    assert await _queued_drains(ctx) == ["email"]
    await deliver_channel(cast(dict[str, Any], ctx), "email")
    assert (await outbox.get(lost.id)).status == "sent"
    assert (await outbox.get(later.id)).status == "queued"


async def test_a_stale_smtp_send_becomes_unknown_and_is_never_resent(
    make_ctx: MakeCtx, outbox: Outbox
) -> None:
    clock.freeze()
    ctx = make_ctx()
    smtp, http = await outbox.message(), await outbox.message(channel="sms", content={"text": "x"})
    now = clock.now()
    # Two workers claimed these (handed them to their providers) and died mid-send.
    async with transaction(ctx["session_factory"]) as session:
        await outbox_sql.claim(session, "email", "smtp", now=now, lease_until=now + LEASE)
        await outbox_sql.claim(session, "sms", "http", now=now, lease_until=now + LEASE)

    # Before the lease ends nothing moves.
    assert (await deliver_due(cast(dict[str, Any], ctx)))["unknown"] == 0
    clock.advance(LEASE + timedelta(seconds=1))
    result = await deliver_due(cast(dict[str, Any], ctx))

    assert (result["unknown"], result["requeued"]) == (1, 1)
    lost = await outbox.get(smtp.id)
    assert (lost.status, lost.next_attempt_at) == ("unknown", None)
    assert lost.error is not None
    assert "DATA in flight" in lost.error
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
            leased = await outbox_sql.claim(
                session, "sms", "http", now=now, lease_until=now + LEASE
            )
            assert len(leased) == 1, attempt
        clock.advance(LEASE + timedelta(seconds=1))
        await deliver_due(cast(dict[str, Any], ctx))
        row = await outbox.get(message.id)
        assert row.attempts == attempt
    assert (row.status, row.next_attempt_at) == ("failed", None)
    assert row.error == "the send was interrupted on every attempt"
