"""Live campaign counters: after a fold, each changed campaign gets the next event id (a Redis
counter, monotonic per campaign) and, when someone listens, its totals on a pub/sub channel.
The SSE endpoint relays them (`text/event-stream`) with heartbeats and `Last-Event-ID`
resume: a client that missed ids gets a fresh snapshot instead of a replay."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.metrics import service
from app.metrics.schemas import StatsEvent

PREFIX = "herald:metrics"


def channel(campaign_id: uuid.UUID) -> str:
    return f"{PREFIX}:campaign:{campaign_id}"


def sequence_key(campaign_id: uuid.UUID) -> str:
    return f"{PREFIX}:seq:{campaign_id}"


async def current_id(redis: Redis, campaign_id: uuid.UUID) -> int:
    value = await redis.get(sequence_key(campaign_id))
    return int(value) if value is not None else 0


async def publish_changes(
    redis: Redis,
    factory: async_sessionmaker[AsyncSession],
    changed: set[tuple[uuid.UUID, uuid.UUID]],
) -> int:
    """Bump each changed campaign's event id; send its totals when it has listeners."""
    sent = 0
    for workspace_id, campaign_id in sorted(changed):
        event_id = int(await redis.incr(sequence_key(campaign_id)))
        listeners = await redis.pubsub_numsub(channel(campaign_id))
        if not listeners or int(listeners[0][1]) == 0:
            continue
        async with factory() as session:
            totals = await service.campaign_totals(session, workspace_id, campaign_id)
        payload = StatsEvent(campaign_id=campaign_id, totals=totals).model_dump(mode="json")
        await redis.publish(channel(campaign_id), json.dumps({"id": event_id, "data": payload}))
        sent += 1
    return sent


def format_event(event: str, event_id: int, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n".encode()


def parse_last_event_id(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 18:
        return None
    return int(value.strip())


async def relay(
    pubsub: PubSub,
    first: bytes | None,
    last_id: int,
    heartbeat_seconds: float,
) -> AsyncIterator[bytes]:
    """The stream body: the snapshot (if any), then `stats` events as they are published and
    a comment line every `heartbeat_seconds`. Always releases the subscription."""
    try:
        yield b"retry: 1000\n\n" + (first or b"")
        next_beat = time.monotonic() + heartbeat_seconds
        while True:
            timeout = max(0.0, next_beat - time.monotonic())
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
            if message is not None and message.get("type") == "message":
                decoded = json.loads(message["data"])
                event_id = int(decoded["id"])
                if event_id > last_id:
                    last_id = event_id
                    yield format_event("stats", event_id, decoded["data"])
            if time.monotonic() >= next_beat:
                yield b": heartbeat\n\n"
                next_beat = time.monotonic() + heartbeat_seconds
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
