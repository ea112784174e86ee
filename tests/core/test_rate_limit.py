from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from app.config import HttpSettings, Settings
from app.core.clock import clock
from app.main import create_app
from tests.fixtures.clients import client_for
from tests.fixtures.tenants import Tenant


@pytest.fixture
async def limited_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"http": HttpSettings(rate_limit_per_minute=3)}))
    async with app.router.lifespan_context(app):
        yield app


async def test_over_limit_is_429_with_retry_after(
    limited_app: FastAPI, tenant: Tenant, other_tenant: Tenant
) -> None:
    clock.freeze(datetime(2026, 11, 22, 12, 0, 10, tzinfo=UTC))
    async with client_for(limited_app) as http:
        statuses = [
            (await http.get("/v1/workspace", headers=tenant.headers)).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        limited = await http.get("/v1/workspace", headers=tenant.headers)
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.headers["retry-after"] == "50"
        # the limit is per key: another key is unaffected
        assert (await http.get("/v1/workspace", headers=other_tenant.headers)).status_code == 200
        clock.advance(timedelta(seconds=50))
        assert (await http.get("/v1/workspace", headers=tenant.headers)).status_code == 200
