"""The live stream over a real socket: a uvicorn server, an httpx streaming client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.config import MetricsSettings, Settings
from app.core.openapi import SSE_ITEM_SCHEMA
from app.metrics import live
from app.metrics.tasks import fold_and_publish
from tests.fixtures import contract as checks
from tests.fixtures.factories import Factory
from tests.fixtures.live import live_server
from tests.fixtures.metrics import NO_SETTLE, World, settings_with
from tests.fixtures.tenants import Tenant

T0 = datetime(2030, 1, 1, 10, tzinfo=UTC)
WAIT = 20.0  # upper bound for a frame to arrive; never a sleep


@dataclass
class Frame:
    event: str | None = None
    id: int | None = None
    data: dict[str, Any] | None = None
    comment: str | None = None


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    frame = Frame()
    async for line in response.aiter_lines():
        if line == "":
            if frame.event or frame.comment:
                yield frame
            frame = Frame()
        elif line.startswith(":"):
            frame.comment = line[1:].strip()
        elif line.startswith("id: "):
            frame.id = int(line[4:])
        elif line.startswith("event: "):
            frame.event = line[7:]
        elif line.startswith("data: "):
            frame.data = json.loads(line[6:])


async def next_frame(stream: AsyncIterator[Frame], *, skip_heartbeats: bool = True) -> Frame:
    async with asyncio.timeout(WAIT):
        async for frame in stream:
            if skip_heartbeats and frame.comment == "heartbeat":
                continue
            return frame
    raise AssertionError("stream ended")


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(settings_with(settings, MetricsSettings(heartbeat_seconds=0.3))) as url:
        yield url


def stream_item_validator(base_url: str) -> Any:
    document = httpx.get(f"{base_url}/openapi.json").json()
    media = "/paths/~1v1~1campaigns~1{campaign_id}~1stream/get/responses/200/content"
    return checks.validator_for(document, f"{media}/text~1event-stream/{SSE_ITEM_SCHEMA}")


async def change_and_fold(world: World, redis: Redis, message_id: Any) -> None:
    await world.set_message(message_id, status="sent", sent_at=T0)
    await fold_and_publish(world.factory, redis, NO_SETTLE)


async def test_snapshot_then_stats_then_heartbeat(
    base_url: str, session_factory: Factory, tenant: Tenant, redis: Redis
) -> None:
    world = await World(session_factory, tenant).setup()
    contact = await world.contact()
    message = await world.message(await world.enroll(contact, T0), contact, T0)
    url = f"{base_url}/v1/campaigns/{world.campaign_id}/stream"
    async with (
        httpx.AsyncClient(timeout=WAIT) as http,
        http.stream("GET", url, headers=tenant.headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = frames(response)
        snapshot = await next_frame(stream)
        assert snapshot.event == "snapshot"
        assert snapshot.data is not None
        assert (snapshot.data["totals"]["enrolled"], snapshot.data["totals"]["sent"]) == (1, 0)
        assert snapshot.id == 0

        await change_and_fold(world, redis, message)
        update = await next_frame(stream)
        assert (update.event, update.id) == ("stats", 1)
        assert update.data is not None
        assert update.data["totals"]["sent"] == 1
        assert update.data["campaign_id"] == str(world.campaign_id)
        # Both events carry what the OpenAPI document says an event's `data` is.
        item = stream_item_validator(base_url)
        assert list(item.iter_errors(snapshot.data)) == []
        assert list(item.iter_errors(update.data)) == []

        beat = await next_frame(stream, skip_heartbeats=False)
        assert beat.comment == "heartbeat"


async def test_last_event_id_resume(
    base_url: str, session_factory: Factory, tenant: Tenant, redis: Redis
) -> None:
    world = await World(session_factory, tenant).setup()
    contact = await world.contact()
    message = await world.message(await world.enroll(contact, T0), contact, T0)
    url = f"{base_url}/v1/campaigns/{world.campaign_id}/stream"
    await change_and_fold(world, redis, message)  # id 1, nobody listening
    assert await live.current_id(redis, world.campaign_id) == 1
    async with httpx.AsyncClient(timeout=WAIT) as http:
        # Missed id 1: a fresh snapshot first.
        headers = {**tenant.headers, "Last-Event-ID": "0"}
        async with http.stream("GET", url, headers=headers) as response:
            first = await next_frame(frames(response))
            assert (first.event, first.id) == ("snapshot", 1)
            assert first.data is not None
            assert first.data["totals"]["sent"] == 1
        # Up to date: no snapshot, the stream goes on with heartbeats.
        headers = {**tenant.headers, "Last-Event-ID": "1"}
        async with http.stream("GET", url, headers=headers) as response:
            first = await next_frame(frames(response), skip_heartbeats=False)
            assert first.comment == "heartbeat"
        # Garbage ids count as none.
        headers = {**tenant.headers, "Last-Event-ID": "abc"}
        async with http.stream("GET", url, headers=headers) as response:
            first = await next_frame(frames(response))
            assert first.event == "snapshot"


async def test_stream_auth_and_tenancy(
    base_url: str, session_factory: Factory, tenant: Tenant, other_tenant: Tenant
) -> None:
    world = await World(session_factory, tenant).setup()
    url = f"{base_url}/v1/campaigns/{world.campaign_id}/stream"
    async with httpx.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(url)).status_code == 401
        response = await http.get(url, headers=other_tenant.headers)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
