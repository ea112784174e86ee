from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from app.config import Settings
from app.core.observability import SENDS_KEY, record_lateness
from app.embedded import EmbeddedRedis
from app.main import create_app
from tests.fixtures.clients import client_for
from tests.fixtures.tenants import Tenant


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_when_all_is_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "redis": "ok"}


@pytest.fixture
async def app_on_own_redis(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, EmbeddedRedis]]:
    redis = EmbeddedRedis(tmp_path / "redis")
    url = redis.start()
    app = create_app(settings.model_copy(update={"redis_url": SecretStr(url)}))
    try:
        async with app.router.lifespan_context(app):
            yield app, redis
    finally:
        redis.stop()


async def test_readyz_is_503_when_redis_stops(
    app_on_own_redis: tuple[FastAPI, EmbeddedRedis],
) -> None:
    app, redis = app_on_own_redis
    async with client_for(app) as http:
        assert (await http.get("/readyz")).status_code == 200
        redis.stop()
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["checks"] == {"postgres": "ok", "redis": "down"}
    assert "redis" in problem["detail"]


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.get("/v1/workspace", headers=tenant.headers)
    await client.get("/v1/members/not-a-uuid", headers=tenant.headers)
    body = (await client.get("/metrics")).text
    assert 'herald_http_requests_total{method="GET",route="/v1/workspace",status="200"}' in body
    assert 'route="/v1/members/{member_id}",status="422"' in body
    assert "herald_http_request_duration_seconds_bucket" in body
    assert "herald_queue_depth" in body


async def test_metrics_report_step_lateness_and_sends_from_every_worker(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    await record_lateness(redis, [0.05, 0.3, 0.3, 42.0])
    await redis.hincrby(SENDS_KEY, "email|sent", 3)  # type: ignore[misc]
    body = (await client.get("/metrics")).text
    assert 'herald_step_lateness_seconds_bucket{le="0.1"} 1.0' in body
    assert 'herald_step_lateness_seconds_bucket{le="0.5"} 3.0' in body
    assert 'herald_step_lateness_seconds_bucket{le="+Inf"} 4.0' in body
    assert 'herald_messages_total{channel="email",outcome="sent"} 3.0' in body
