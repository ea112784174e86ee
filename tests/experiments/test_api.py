"""Experiments API on constructed messages: exact per-variant numbers (unique contacts,
unsent, other steps and campaigns left out, conversions inside the goal window only), the
figures against independent references, the running always-valid p-value, manual and
automatic declaration (table, audit row, webhook event), and cross-tenant 404s."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from statsmodels.stats.proportion import proportions_ztest  # type: ignore[import-untyped]

from app.audit.models import AuditEvent
from app.config import Settings
from app.core.clock import clock
from app.core.db import transaction
from app.core.jobs import enqueue
from app.core.state import AppState
from app.experiments import stats
from app.experiments.models import ExperimentDeclaration
from tests.experiments import support as xs
from tests.experiments.support import NOW, Send
from tests.fixtures import emissions as webhooks
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

DAY = timedelta(days=1)


def base(world: xs.World) -> str:
    return f"/v1/campaigns/{world.campaign_id}/experiments"


async def get(client: httpx.AsyncClient, world: xs.World, query: str = "") -> dict[str, Any]:
    response = await client.get(f"{base(world)}/offer{query}", headers=world.tenant.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in report["variants"]}


async def constructed(client: httpx.AsyncClient, factory: Factory, tenant: Tenant) -> xs.World:
    """a: 10 exposed (6 opened, 3 clicked, 1 replied; 2 converted inside the window, one
    purchase before the send, one after the window) + 1 unsent; b: 8 exposed (5 opened,
    4 clicked; 3 converted, one of them twice) + a second visit of a b contact; plus a
    message of another step and one of another campaign."""
    world = await xs.world(client, factory, tenant)
    sends = [
        Send("a", opened=True, clicked=True, replied=True, purchases=(DAY,)),
        Send("a", opened=True, clicked=True, purchases=(2 * DAY,)),
        Send("a", opened=True, clicked=True),
        Send("a", opened=True, purchases=(-timedelta(hours=1),)),
        Send("a", opened=True, purchases=(8 * DAY,)),
        Send("a", opened=True),
        Send("a"),
        Send("a"),
        Send("a"),
        Send("a"),
        Send("a", sent=False, opened=False),
        Send("b", opened=True, clicked=True, purchases=(2 * DAY, 3 * DAY)),
        Send("b", opened=True, clicked=True, purchases=(2 * DAY,)),
        Send("b", opened=True, clicked=True, purchases=(2 * DAY,)),
        Send("b", opened=True, clicked=True),
        Send("b", opened=True),
        Send("b"),
        Send("b"),
        Send("b"),
        Send(None, step_key="plain", opened=True, clicked=True),
    ]
    ids = await xs.exposures(factory, world, sends)
    # the first b contact, sent the step again (a second visit): still one exposure
    await xs.exposures(factory, world, [Send("b", opened=True, visit=2)], contacts=[ids[11]])
    other = await xs.world(client, factory, tenant)
    await xs.exposures(factory, world, [Send("a", clicked=True)], campaign_id=other.campaign_id)
    return world


async def test_report_has_exact_counts_and_reference_figures(
    client: httpx.AsyncClient, session_factory: Factory, tenant: Tenant
) -> None:
    clock.freeze(NOW + 30 * DAY)
    world = await constructed(client, session_factory, tenant)
    report = await get(client, world, "?metric=click&mde=0.2&power=0.8")
    rows = by_key(report)
    counts = {
        key: (row["sent"], row["opened"], row["clicked"], row["replied"], row["converted"])
        for key, row in rows.items()
    }
    assert counts == {"a": (10, 6, 3, 1, 2), "b": (8, 5, 4, 0, 3)}
    assert (report["metric"], report["control"], report["status"]) == ("click", "a", "collecting")
    a, b = rows["a"], rows["b"]
    assert (a["control"], b["control"]) == (True, False)
    assert (a["successes"], a["rate"], b["successes"], b["rate"]) == (3, 0.3, 4, 0.5)
    assert a["lift"] is None
    assert a["p_value"] is None
    assert b["lift"] == pytest.approx(0.2)
    assert b["relative_lift"] == pytest.approx(0.2 / 0.3)
    _, expected = proportions_ztest(np.array([4, 3]), np.array([8, 10]))
    assert b["p_value_fixed_horizon"] == pytest.approx(expected, rel=1e-9)
    assert b["p_value"] == pytest.approx(stats.msprt_p_value((3, 10), (4, 8)))
    assert b["p_value"] > b["p_value_fixed_horizon"]
    sequence_interval = stats.msprt_interval((3, 10), (4, 8), 0.05)
    assert sequence_interval is not None
    assert b["confidence_sequence"] == {
        "low": pytest.approx(sequence_interval.low),
        "high": pytest.approx(sequence_interval.high),
    }
    assert b["probability_to_beat_control"] == pytest.approx(
        stats.probability_to_beat((3, 10), (4, 8))
    )
    wilson = stats.rate_interval(3, 10)
    assert wilson is not None
    assert a["interval"] == {"low": pytest.approx(wilson.low), "high": pytest.approx(wilson.high)}
    assert report["sample_size"] == {
        "mde": 0.2,
        "alpha": 0.05,
        "power": 0.8,
        "baseline": 0.3,
        "per_variant": stats.sample_size(0.3, 0.2, 0.05, 0.8),
        "remaining": stats.sample_size(0.3, 0.2, 0.05, 0.8) - 8,  # type: ignore[operator]
    }
    # the list holds the one experiment (the `plain` step has no variants); with a goal, the
    # default metric is conversion
    listed = await client.get(base(world), headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    (only,) = listed.json()["data"]
    assert (only["step_key"], only["metric"]) == ("offer", "conversion")
    assert [row["successes"] for row in only["variants"]] == [2, 3]
    for metric, expected_successes in (("open", [6, 5]), ("reply", [1, 0])):
        found = await get(client, world, f"?metric={metric}")
        assert [row["successes"] for row in found["variants"]] == expected_successes


async def test_always_valid_p_value_is_the_running_minimum(
    client: httpx.AsyncClient, session_factory: Factory, tenant: Tenant
) -> None:
    clock.freeze(NOW + DAY)
    world = await xs.world(client, session_factory, tenant)
    await xs.exposures(
        session_factory,
        world,
        [Send("a", clicked=i < 2) for i in range(40)]
        + [Send("b", clicked=i < 15) for i in range(40)],
    )
    first = by_key(await get(client, world, "?metric=click"))["b"]
    assert first["p_value"] == pytest.approx(stats.msprt_p_value((2, 40), (15, 40)))
    # later exposures with the same rates in both arms weaken the current evidence...
    await xs.exposures(
        session_factory,
        world,
        [Send("a", clicked=i < 30) for i in range(100)]
        + [Send("b", clicked=i < 30) for i in range(100)],
    )
    later = by_key(await get(client, world, "?metric=click"))["b"]
    assert stats.msprt_p_value((32, 140), (45, 140)) > first["p_value"]
    # ...but the always-valid p-value is the running minimum, and the sequence only tightens
    assert later["p_value"] == pytest.approx(first["p_value"])
    assert later["confidence_sequence"]["low"] >= first["confidence_sequence"]["low"]
    assert later["confidence_sequence"]["high"] <= first["confidence_sequence"]["high"]
    assert later["p_value_fixed_horizon"] != first["p_value_fixed_horizon"]


async def test_manual_declaration_is_recorded_audited_and_emitted(
    client: httpx.AsyncClient, session_factory: Factory, tenant: Tenant
) -> None:
    clock.freeze(NOW + 30 * DAY)
    world = await constructed(client, session_factory, tenant)
    await webhooks.subscribe(session_factory, tenant, ["experiment.*"])
    url = f"{base(world)}/offer/winner"
    body = {"variant": "b", "metric": "click", "apply_to_remaining": True}
    response = await client.post(url, json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    declared = response.json()
    assert {k: declared[k] for k in ("step_key", "variant", "metric", "declared_by")} == {
        "step_key": "offer",
        "variant": "b",
        "metric": "click",
        "declared_by": "manual",
    }
    assert declared["apply_to_remaining"] is True
    assert declared["p_value"] == pytest.approx(stats.msprt_p_value((3, 10), (4, 8)))
    assert declared["sequence_id"] == str(world.sequence_id)
    async with session_factory() as session:
        row = (await session.execute(select(ExperimentDeclaration))).scalar_one()
        audit = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.action == "experiment.winner_declared")
            )
        ).scalar_one()
    assert row.snapshot["variants"][1]["clicked"] == 4
    assert (audit.entity_id, audit.actor_type) == (world.campaign_id, "member")
    assert audit.data is not None
    assert audit.data["variant"] == "b"
    emitted = webhooks.of_type(
        await webhooks.events(session_factory, tenant), "experiment.winner_declared"
    )
    assert emitted == [
        {
            "campaign_id": str(world.campaign_id),
            "sequence_id": str(world.sequence_id),
            "step_key": "offer",
            "variant": "b",
            "metric": "click",
            "declared_by": "manual",
        }
    ]
    report = await get(client, world)
    assert report["status"] == "winner_declared"
    assert report["winner"]["variant"] == "b"
    # one winner per step
    again = await client.post(url, json={**body, "variant": "a"}, headers=tenant.headers)
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_declaration_errors(
    client: httpx.AsyncClient, session_factory: Factory, tenant: Tenant
) -> None:
    world = await xs.world(client, session_factory, tenant)
    url = f"{base(world)}/offer/winner"
    unknown = await client.post(
        url, json={"variant": "zz", "metric": "click"}, headers=tenant.headers
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["errors"][0]["code"] == "unknown_variant"
    not_experiment = await client.post(
        f"{base(world)}/plain/winner",
        json={"variant": "a", "metric": "click"},
        headers=tenant.headers,
    )
    assert not_experiment.status_code == 404, not_experiment.text
    extra = await client.post(
        url, json={"variant": "a", "metric": "click", "x": 1}, headers=tenant.headers
    )
    assert extra.status_code == 422
    bad_metric = await client.post(
        url, json={"variant": "a", "metric": "revenue"}, headers=tenant.headers
    )
    assert bad_metric.status_code == 422
    no_goal = await xs.world(client, session_factory, tenant, goal=None)
    refused = await client.post(
        f"{base(no_goal)}/offer/winner",
        json={"variant": "a", "metric": "conversion"},
        headers=tenant.headers,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["code"] == "no_goal"
    for query in ("?mde=0", "?mde=nan", "?power=1", "?metric=revenue"):
        response = await client.get(f"{base(world)}{query}", headers=tenant.headers)
        assert response.status_code == 422, (query, response.text)
    missing = await client.get(f"/v1/campaigns/{uuid.uuid4()}/experiments", headers=tenant.headers)
    assert missing.status_code == 404
    assert (await get(client, no_goal))["metric"] == "click"  # no goal: click by default


async def run_cron(state: AppState, settings: Settings) -> None:
    async with transaction(state.session_factory, state.queue) as session:
        enqueue(session, "experiments_auto_declare", job_key=(uuid.uuid4(),))
    await harness.run_jobs(settings)


async def test_automatic_declaration_by_the_cron(
    client: httpx.AsyncClient,
    session_factory: Factory,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
) -> None:
    clock.freeze(NOW + DAY)
    await webhooks.subscribe(session_factory, tenant, ["experiment.winner_declared"])
    strong = await xs.world(client, session_factory, tenant)
    weak = await xs.world(client, session_factory, tenant)
    small = await xs.world(client, session_factory, tenant)
    body = {"metric": "click", "min_sample": 100, "alpha": 0.05, "apply_to_remaining": False}
    for world in (strong, weak, small):
        response = await client.put(
            f"{base(world)}/offer/settings", json=body, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == {**body, "auto_declare": True}
    await xs.exposures(
        session_factory,
        strong,
        [Send("a", clicked=i < 10) for i in range(150)]
        + [Send("b", clicked=i < 45) for i in range(150)],
    )
    await xs.exposures(  # enough exposures, no difference
        session_factory,
        weak,
        [Send("a", clicked=i < 20) for i in range(150)]
        + [Send("b", clicked=i < 21) for i in range(150)],
    )
    await xs.exposures(  # a clear difference, below the minimum sample
        session_factory,
        small,
        [Send("a", clicked=False) for _ in range(60)]
        + [Send("b", clicked=True) for _ in range(60)],
    )
    assert (await get(client, strong))["status"] == "significant"
    assert (await get(client, weak))["status"] == "inconclusive"
    assert (await get(client, small))["status"] == "collecting"
    await run_cron(state, settings)
    async with session_factory() as session:
        rows = (await session.execute(select(ExperimentDeclaration))).scalars().all()
    assert [(row.campaign_id, row.variant, row.declared_by) for row in rows] == [
        (strong.campaign_id, "b", "automatic")
    ]
    assert rows[0].apply_to_remaining is False
    report = await get(client, strong)
    assert (report["status"], report["winner"]["declared_by"]) == ("winner_declared", "automatic")
    emitted = webhooks.of_type(
        await webhooks.events(session_factory, tenant), "experiment.winner_declared"
    )
    assert [(e["campaign_id"], e["declared_by"]) for e in emitted] == [
        (str(strong.campaign_id), "automatic")
    ]
    async with session_factory() as session:
        audit = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.action == "experiment.winner_declared")
            )
        ).scalar_one()
    assert (audit.entity_id, audit.actor_type) == (strong.campaign_id, "system")
    await run_cron(state, settings)  # a later tick declares nothing twice
    async with session_factory() as session:
        assert len((await session.execute(select(ExperimentDeclaration))).scalars().all()) == 1


async def test_other_workspace_gets_404(
    client: httpx.AsyncClient, session_factory: Factory, tenant: Tenant, other_tenant: Tenant
) -> None:
    world = await xs.world(client, session_factory, tenant)
    headers = other_tenant.headers
    assert (await client.get(base(world), headers=headers)).status_code == 404
    assert (await client.get(f"{base(world)}/offer", headers=headers)).status_code == 404
    response = await client.post(
        f"{base(world)}/offer/winner", json={"variant": "a", "metric": "click"}, headers=headers
    )
    assert response.status_code == 404
    response = await client.put(
        f"{base(world)}/offer/settings", json={"metric": "click"}, headers=headers
    )
    assert response.status_code == 404
    async with session_factory() as session:
        assert (await session.execute(select(ExperimentDeclaration))).first() is None
