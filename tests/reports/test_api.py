"""Reports API: scopes, cross-tenant 404, range validation (422 with pointers)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.core.clock import clock
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant, make_key
from tests.reports.helpers import shop

PROBLEM = "application/problem+json"


async def test_other_workspaces_campaign_is_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    world = await shop(session_factory, tenant)
    path = f"/v1/campaigns/{world.campaign_id}/report"
    assert (await client.get(path, headers=tenant.headers)).status_code == 200
    for response in (
        await client.get(path, headers=other_tenant.headers),
        await client.get(f"/v1/campaigns/{uuid.uuid4()}/report", headers=tenant.headers),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith(PROBLEM)


async def test_scope_is_metrics_read(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    world = await shop(session_factory, tenant)
    paths = ["/v1/reports/overview", f"/v1/campaigns/{world.campaign_id}/report"]
    reader = await make_key(session_factory, tenant, ["metrics:read"])
    other = await make_key(session_factory, tenant, ["campaigns:read"])
    for path in paths:
        ok = await client.get(path, headers={"Authorization": f"Bearer {reader}"})
        assert ok.status_code == 200, ok.text
        denied = await client.get(path, headers={"Authorization": f"Bearer {other}"})
        assert denied.status_code == 403, denied.text
        assert (await client.get(path)).status_code == 401


async def test_default_range_is_the_last_30_days(client: httpx.AsyncClient, tenant: Tenant) -> None:
    from datetime import UTC, datetime

    clock.freeze(datetime(2030, 3, 1, 12, tzinfo=UTC))
    response = await client.get("/v1/reports/overview", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"]) == ("2030-01-30T12:00:00Z", "2030-03-01T12:00:00Z")


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "/from"),
        ({"from": "2030-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "/from"),
        ({"from": "2029-01-01T00:00:00Z", "to": "2030-01-02T00:00:01Z"}, "/to"),
        ({"from": "yesterday"}, "/from"),
        ({"from": "2030-01-01T00:00:00"}, "/from"),  # no offset
        ({"to": "0001-01-01T00:00:00Z"}, "/to"),
        ({"from": "9999-12-31T00:00:00Z"}, "/from"),
    ],
)
async def test_bad_ranges_are_422(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], pointer: str
) -> None:
    response = await client.get("/v1/reports/overview", params=params, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert ("query", pointer) in [(e["location"], e["pointer"]) for e in response.json()["errors"]]
