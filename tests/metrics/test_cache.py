"""The read cache (app/metrics/cache.py) never serves a stale figure: after every kind of
change (a message update not yet folded, a queued event, the fold itself, a goal edit) the
HTTP body equals what the uncached service computes at that moment."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.campaigns.models import Campaign
from app.config import MetricsSettings
from app.core.db import transaction
from app.metrics import cache, service
from app.metrics.cache import ResponseCache
from tests.fixtures.factories import Factory
from tests.fixtures.metrics import World
from tests.fixtures.tenants import Tenant
from tests.metrics.scenario import T0, build_scenario, minutes


@pytest.fixture
async def world(session_factory: Factory, tenant: Tenant) -> World:
    cache.responses.clear()
    return await World(session_factory, tenant).setup(segments=2)


def _without_as_of(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "as_of"}


async def _check(client: httpx.AsyncClient, tenant: Tenant, world: World) -> dict[str, Any]:
    """Stats (plain and by variant) read twice over HTTP equal the uncached service's."""
    url = f"/v1/campaigns/{world.campaign_id}/stats"
    for group_by in (None, "variant"):
        expected = (await world.stats(group_by)).model_dump(mode="json", by_alias=True)
        params = {"group_by": group_by} if group_by else {}
        for _ in range(2):  # a miss, then a hit
            response = await client.get(url, params=params, headers=tenant.headers)
            assert response.status_code == 200, response.text
            assert _without_as_of(response.json()) == _without_as_of(expected)
    return dict(expected["totals"])


async def _series(client: httpx.AsyncClient, tenant: Tenant, world: World) -> Any:
    url = f"/v1/campaigns/{world.campaign_id}/stats/timeseries"
    params = {"bucket": "hour", "from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}
    bodies = [(await client.get(url, params=params, headers=tenant.headers)).json() for _ in "ab"]
    assert bodies[0] == bodies[1]
    return bodies[0]


def _opens(series: Any) -> int:
    return sum(p["figures"]["opened"]["total"] for p in series["series"][0]["points"])


async def test_cached_reads_follow_every_change(
    client: httpx.AsyncClient, tenant: Tenant, world: World
) -> None:
    scenario = await build_scenario(world)
    (c1, _, c3, _), (m1, _, _, m4) = scenario["contacts"], scenario["messages"]
    first = await _check(client, tenant, world)
    assert cache.responses.hits == 2  # the second read of each
    opens = _opens(await _series(client, tenant, world))
    assert opens == first["opened"]["total"] == 4

    # A message update, not folded yet: a delta.
    await world.set_message(m4, status="sent", sent_at=minutes(30))
    second = await _check(client, tenant, world)
    assert second["sent"] == first["sent"] + 1

    # A queued tracking event (the fold has not examined it).
    await world.event(c1, "email.opened", minutes(90), message_id=m1)
    third = await _check(client, tenant, world)
    assert third["opened"]["total"] == 5
    assert _opens(await _series(client, tenant, world)) == 5

    # The fold moves deltas and queued events into rollups and facts: same figures.
    await world.fold()
    assert await _check(client, tenant, world) == third
    assert _opens(await _series(client, tenant, world)) == 5

    # A change after the fold, then another fold (the deltas are empty before and after).
    await world.event(c3, "email.opened", minutes(95), message_id=scenario["messages"][2])
    await world.fold()
    assert (await _check(client, tenant, world))["opened"]["total"] == 6
    assert _opens(await _series(client, tenant, world)) == 6

    # Editing the goal changes which queued events convert: a new signature.
    await world.event(c1, "signup", minutes(200))
    async with transaction(world.factory) as session:
        await session.execute(
            update(Campaign)
            .where(Campaign.id == world.campaign_id)
            .values(goal={"event_type": "signup", "window": "P7D"}, version=Campaign.version + 1)
        )
    await _check(client, tenant, world)


def test_cache_bounds() -> None:
    responses = ResponseCache(ttl=60, max_entries=2)
    responses.put("a", 1, b"a")
    responses.put("b", 1, b"b")
    assert responses.get("a", 1) == b"a"
    assert responses.get("a", 2) is None  # another signature: dropped
    assert responses.get("a", 1) is None
    responses.put("c", 1, b"c")
    responses.put("d", 1, b"d")
    assert responses.get("b", 1) is None  # the oldest went first
    assert responses.get("d", 1) == b"d"
    expired = ResponseCache(ttl=-1)
    expired.put("a", 1, b"a")
    assert expired.get("a", 1) is None


async def _concurrently(count: int, call: Any) -> list[Any]:
    tasks = [asyncio.create_task(call()) for _ in range(count)]
    await asyncio.sleep(0)  # every task reaches the cache before the computation finishes
    return tasks


async def test_concurrent_misses_share_one_computation() -> None:
    responses = ResponseCache()
    release = asyncio.Event()
    calls = 0

    async def compute() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        return b"figures"

    tasks = await _concurrently(5, lambda: responses.get_or_compute("k", 1, compute))
    release.set()
    assert await asyncio.gather(*tasks) == [b"figures"] * 5
    assert calls == 1
    assert responses.shared == 4
    assert await responses.get_or_compute("k", 1, compute) == b"figures"  # now a hit
    assert calls == 1
    # Another signature is another computation.
    assert await responses.get_or_compute("k", 2, compute) == b"figures"
    assert calls == 2


async def test_a_failed_computation_lets_each_waiter_compute_its_own() -> None:
    responses = ResponseCache()
    release = asyncio.Event()
    calls = 0

    async def compute() -> bytes:
        nonlocal calls
        calls += 1
        first = calls == 1
        await release.wait()
        if first:
            raise RuntimeError("the leader's database went away")
        return b"figures"

    tasks = await _concurrently(3, lambda: responses.get_or_compute("k", 1, compute))
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1:] == [b"figures", b"figures"]
    assert calls == 3
    assert responses.shared == 0


@pytest.mark.parametrize("bucket", ["hour", "day"])
@pytest.mark.parametrize("group_by", [None, "step", "variant", "channel"])
async def test_series_json_is_exactly_the_documented_model(
    client: httpx.AsyncClient, tenant: Tenant, world: World, bucket: str, group_by: str | None
) -> None:
    """The JSON endpoint serialises the series document directly (no models); it must be
    exactly what the `CampaignTimeseries` model gives for the same figures."""
    await build_scenario(world)
    start, end = T0 - timedelta(hours=3), T0 + timedelta(days=2)
    params = {"bucket": bucket, "from": start.isoformat(), "to": end.isoformat()}
    if group_by:
        params["group_by"] = group_by
    response = await client.get(
        f"/v1/campaigns/{world.campaign_id}/stats/timeseries", params=params, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    async with world.factory() as session:
        model = await service.campaign_timeseries(
            session,
            world.workspace_id,
            world.campaign_id,
            MetricsSettings(),
            bucket=bucket,  # type: ignore[arg-type]
            start=start,
            end=end,
            group_by=group_by,  # type: ignore[arg-type]
        )
    expected = model.model_dump(mode="json", by_alias=True)
    assert response.json() == expected
    assert any(point["figures"]["sent"] for s in expected["series"] for point in s["points"])
