"""The headers the document declares are the headers the service sends."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from app.config import HttpSettings, Settings
from app.core.clock import clock
from app.core.locations import api_routes, fill, location_template
from app.main import create_app
from tests.fixtures.clients import client_for
from tests.fixtures.tenants import Tenant


@pytest.fixture
async def limited_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"http": HttpSettings(rate_limit_per_minute=3)}))
    async with app.router.lifespan_context(app):
        yield app


async def test_ratelimit_fields_count_down_then_429_with_retry_after(
    limited_app: FastAPI, tenant: Tenant
) -> None:
    clock.freeze(datetime(2026, 11, 22, 12, 0, 10, tzinfo=UTC))
    async with client_for(limited_app) as http:
        answers = [await http.get("/v1/workspace", headers=tenant.headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit"] for a in answers] == [
        '"per-key";r=2;t=50',
        '"per-key";r=1;t=50',
        '"per-key";r=0;t=50',
        '"per-key";r=0;t=50',
    ]
    assert {a.headers["ratelimit-policy"] for a in answers} == {'"per-key";q=3;w=60'}
    assert answers[3].headers["retry-after"] == "50"


async def test_no_ratelimit_fields_without_a_counted_key(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/workspace")
    assert answer.status_code == 401
    assert "ratelimit" not in answer.headers
    assert "ratelimit" not in (await client.get("/healthz")).headers


async def test_created_answers_carry_their_location(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/v1/contacts", json={"email": "ana@example.com"}, headers=tenant.headers
    )
    assert created.status_code == 201
    location = created.headers["location"]
    assert location == f"/v1/contacts/{created.json()['id']}"
    assert (await client.get(location, headers=tenant.headers)).json() == created.json()


async def test_a_replayed_creation_carries_the_same_location(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "contract-location-1"}
    body = {"channel": "email", "address": "bo@example.com", "reason": "manual"}
    first = await client.post("/v1/suppressions", json=body, headers=headers)
    assert first.status_code == 201, first.text
    replay = await client.post("/v1/suppressions", json=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    assert first.headers["location"] == f"/v1/suppressions/{first.json()['id']}"


def test_every_created_resource_has_a_location_that_can_be_read() -> None:
    app = create_app(Settings(database_url=None, redis_url=None))
    routes = api_routes(app.router.routes)
    readable = {route.path for route in routes if "GET" in (route.methods or set())}
    created = [route for route in routes if route.status_code == 201]
    assert len(created) >= 15
    for route in created:
        template = location_template(route)
        assert template is not None
        target = template.replace("{id}", "{x}")
        assert any(_same_shape(target, path) for path in readable), (route.path, template)


def _same_shape(template: str, path: str) -> bool:
    pattern = re.sub(r"\{[^}]+\}", "{}", template)
    return pattern == re.sub(r"\{[^}]+\}", "{}", path)


def test_fill_takes_path_parameters_then_body_fields() -> None:
    template = "/v1/templates/{template_id}/versions/{number}"
    assert fill(template, {"template_id": "t1"}, {"number": 2}) == "/v1/templates/t1/versions/2"
    assert fill(template, {"template_id": "t1"}, {}) is None
    assert fill("/v1/x/{id}", {}, {"id": "a/b"}) == "/v1/x/a%2Fb"
