"""Stats and time-series endpoints: figures over HTTP, validation, cross-tenant 404s."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.fixtures.factories import Factory
from tests.fixtures.metrics import World
from tests.fixtures.tenants import Tenant
from tests.metrics.scenario import EXPECTED_TOTALS, T0, build_scenario

PROBLEM = "application/problem+json"


@pytest.fixture
async def world(session_factory: Factory, tenant: Tenant) -> World:
    return await World(session_factory, tenant, timezone="Europe/Paris").setup(segments=2)


async def test_stats_endpoint(client: httpx.AsyncClient, tenant: Tenant, world: World) -> None:
    await build_scenario(world)
    url = f"/v1/campaigns/{world.campaign_id}/stats"
    response = await client.get(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    totals = body["totals"]
    assert totals["revenue"] == "170.0000"
    assert {k: v for k, v in totals.items() if k != "rates"} == {
        k: v for k, v in EXPECTED_TOTALS.items() if k != "rates"
    }
    assert totals["rates"]["conversion"] == 0.75
    assert body["groups"] is None

    await world.fold()
    grouped = await client.get(url, params={"group_by": "variant"}, headers=tenant.headers)
    assert grouped.status_code == 200
    rows = {(g["step_key"], g["variant"]): g for g in grouped.json()["groups"]}
    assert rows["hello", "A"]["converted"] == 3
    assert rows[None, None]["enrolled"] == 4
    by_segment = await client.get(url, params={"group_by": "segment"}, headers=tenant.headers)
    assert [g["segment_id"] for g in by_segment.json()["groups"]] == [
        str(s) for s in world.segment_ids
    ]


async def test_timeseries_endpoint(client: httpx.AsyncClient, tenant: Tenant, world: World) -> None:
    await build_scenario(world)
    url = f"/v1/campaigns/{world.campaign_id}/stats/timeseries"
    # Paris is UTC+1 in January: local days start at 23:00Z.
    params = {"bucket": "day", "from": "2029-12-31T23:00:00Z", "to": "2030-01-02T23:00:00Z"}
    response = await client.get(url, params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["timezone"], body["from"], body["to"]) == (
        "Europe/Paris",
        "2029-12-31T23:00:00Z",
        "2030-01-02T23:00:00Z",
    )
    (series,) = body["series"]
    assert [p["start"] for p in series["points"]] == [
        "2029-12-31T23:00:00Z",
        "2030-01-01T23:00:00Z",
    ]
    first_day = series["points"][0]["figures"]
    assert (first_day["sent"], first_day["converted"], first_day["enrolled"]) == (3, 2, 4)
    assert series["points"][1]["figures"]["sent"] == 0

    hourly = await client.get(
        url,
        params={
            "bucket": "hour",
            "from": T0.isoformat(),
            "to": (T0 + timedelta(hours=3)).isoformat(),
            "group_by": "variant",
        },
        headers=tenant.headers,
    )
    assert hourly.status_code == 200
    variant_a = next(s for s in hourly.json()["series"] if s["variant"] == "A")
    assert [p["figures"]["opened"]["total"] for p in variant_a["points"]] == [2, 2, 0]


@pytest.mark.parametrize(
    "params",
    [
        {"bucket": "week"},
        {"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
        {"bucket": "hour", "from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
        {"from": "yesterday"},
        {"from": "2030-01-01T00:00:00"},
        {"bucket": "day", "from": "0001-01-01T00:00:00Z", "to": "0001-01-05T00:00:00Z"},
        {"bucket": "day", "from": "9999-12-25T00:00:00Z", "to": "9999-12-31T23:59:59Z"},
    ],
)
async def test_timeseries_rejects_bad_ranges(
    client: httpx.AsyncClient, tenant: Tenant, world: World, params: dict[str, str]
) -> None:
    url = f"/v1/campaigns/{world.campaign_id}/stats/timeseries"
    response = await client.get(url, params=params, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_bad_group_by_is_422(client: httpx.AsyncClient, tenant: Tenant, world: World) -> None:
    url = f"/v1/campaigns/{world.campaign_id}/stats"
    response = await client.get(url, params={"group_by": "planet"}, headers=tenant.headers)
    assert response.status_code == 422


@pytest.mark.parametrize("path", ["stats", "stats/timeseries", "stream"])
async def test_cross_tenant_and_unknown_campaigns_are_404(
    client: httpx.AsyncClient, other_tenant: Tenant, world: World, path: str
) -> None:
    for campaign_id, tenant in ((world.campaign_id, other_tenant), (uuid.uuid4(), world.tenant)):
        response = await client.get(f"/v1/campaigns/{campaign_id}/{path}", headers=tenant.headers)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("path", ["stats", "stats/timeseries", "stream"])
async def test_requires_a_key(client: httpx.AsyncClient, world: World, path: str) -> None:
    response = await client.get(f"/v1/campaigns/{world.campaign_id}/{path}")
    assert response.status_code == 401


async def test_empty_campaign_has_zeros_and_null_rates(
    client: httpx.AsyncClient, tenant: Tenant, world: World
) -> None:
    response = await client.get(f"/v1/campaigns/{world.campaign_id}/stats", headers=tenant.headers)
    totals = response.json()["totals"]
    assert totals["sent"] == 0
    assert totals["revenue"] == "0"
    assert set(totals["rates"].values()) == {None}
    end = datetime.now(UTC)
    series = await client.get(
        f"/v1/campaigns/{world.campaign_id}/stats/timeseries",
        params={
            "bucket": "hour",
            "from": (end - timedelta(hours=2)).isoformat(),
            "to": end.isoformat(),
        },
        headers=tenant.headers,
    )
    assert series.status_code == 200, series.text
