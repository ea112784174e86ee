"""Approval cycle times, first-time approval rate and launch variance: real review rounds
(policy, reviewers, decisions through the API) with the clock moved between decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from app.campaigns.models import Campaign
from app.core.clock import clock
from app.core.db import transaction
from tests.fixtures.approvals import campaign, decide, make_policy, reviewer, stage, submit
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant
from tests.reports.helpers import get

T = datetime(2030, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
RANGE = {"from": "2030-01-01T00:00:00Z", "to": "2030-01-31T00:00:00Z"}


async def _ok(response: httpx.Response) -> None:
    assert response.status_code == 201, response.text


async def test_cycle_times_first_time_rate_and_launch_variance(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    clock.freeze(T - D)
    brand = await reviewer(session_factory, tenant, "Bea", ["brand"])
    legal = await reviewer(session_factory, tenant, "Lou", ["legal"])
    await make_policy(client, tenant, [stage("Brand", ["brand"]), stage("Legal", ["legal"])])

    # c0: approved first time, but before the range (counts nowhere in the summary).
    c0 = await campaign(session_factory, tenant, name="C0")
    r0 = await submit(session_factory, tenant, c0)
    clock.advance(H)
    await _ok(await decide(client, brand, r0))
    await _ok(await decide(client, legal, r0))

    # c1: submitted at T, Brand approves after 2 h, Legal after 3 more: approved first time.
    clock.freeze(T)
    c1 = await campaign(session_factory, tenant, name="C1")
    r1 = await submit(session_factory, tenant, c1)
    clock.advance(2 * H)
    await _ok(await decide(client, brand, r1))
    clock.advance(3 * H)
    await _ok(await decide(client, legal, r1))

    # c2: Brand rejects after 1 h; resubmitted a day later: Brand 30 min, Legal 1 h.
    clock.freeze(T + D)
    c2 = await campaign(session_factory, tenant, name="C2")
    r2a = await submit(session_factory, tenant, c2)
    clock.advance(H)
    await _ok(await decide(client, brand, r2a, "reject", comment="Off brand"))
    clock.freeze(T + 2 * D)
    r2b = await submit(session_factory, tenant, c2)
    clock.advance(H / 2)
    await _ok(await decide(client, brand, r2b))
    clock.advance(H)
    await _ok(await decide(client, legal, r2b))

    # c3: Brand approves after 1 h; Legal still pending (no verdict yet).
    clock.freeze(T + 3 * D)
    c3 = await campaign(session_factory, tenant, name="C3")
    r3 = await submit(session_factory, tenant, c3)
    clock.advance(H)
    await _ok(await decide(client, brand, r3))

    # Launch variance: c1 2 s late, c2 60 s early; c0 launched before the range.
    async with transaction(session_factory) as session:
        for cid, planned, actual in (
            (c0, T - D, T - D + timedelta(seconds=500)),
            (c1, T + 3 * D, T + 3 * D + timedelta(seconds=2)),
            (c2, T + 4 * D, T + 4 * D - timedelta(seconds=60)),
        ):
            await session.execute(
                update(Campaign)
                .where(Campaign.id == cid)
                .values(planned_start_at=planned, launched_at=actual)
            )
    clock.freeze(T + 10 * D)

    body = await get(client, tenant, "/v1/reports/overview", **RANGE)
    approvals = body["approvals"]
    # Overall (submission -> approval): c1 5 h, c2's second round 1.5 h.
    assert approvals["overall"] == {
        "count": 2,
        "mean": "11700.000",
        "median": "11700.000",
        "p90": "16740.000",  # 5400 + 0.9 * (18000 - 5400)
        "min": "5400.000",
        "max": "18000.000",
    }
    stages = {row["name"]: row["cycle"] for row in approvals["stages"]}
    # Brand: 7200 (c1), 3600 (c2 rejected), 1800 (c2 again), 3600 (c3).
    assert stages["Brand"] == {
        "count": 4,
        "mean": "4050.000",
        "median": "3600.000",
        "p90": "6120.000",  # rank 2.7 of 1800, 3600, 3600, 7200
        "min": "1800.000",
        "max": "7200.000",
    }
    assert stages["Legal"] == {
        "count": 2,
        "mean": "7200.000",
        "median": "7200.000",
        "p90": "10080.000",
        "min": "3600.000",
        "max": "10800.000",
    }
    assert list(stages) == ["Brand", "Legal"]
    assert approvals["first_time_approval"] == {
        "campaigns": 2,
        "approved_first_time": 1,
        "rate": "0.5000",
    }
    assert body["launch_variance"] == {
        "count": 2,
        "mean": "-29.000",
        "median": "-29.000",
        "p90": "-4.200",  # -60 + 0.9 * 62
        "min": "-60.000",
        "max": "2.000",
    }

    # The per-campaign history: every round with its stages and cycle times.
    report = await get(client, tenant, f"/v1/campaigns/{c2}/report")
    history: dict[str, Any] = report["approvals"]
    assert history["first_time_approved"] is False
    assert [
        (r["round"], r["status"], r["cycle_seconds"], r["submitted_at"], r["decided_at"])
        for r in history["rounds"]
    ] == [
        (1, "rejected", "3600.000", "2030-01-02T00:00:00Z", "2030-01-02T01:00:00Z"),
        (2, "approved", "5400.000", "2030-01-03T00:00:00Z", "2030-01-03T01:30:00Z"),
    ]
    assert history["rounds"][0]["stages"] == [
        {
            "name": "Brand",
            "started_at": "2030-01-02T00:00:00Z",
            "decided_at": "2030-01-02T01:00:00Z",
            "cycle_seconds": "3600.000",
        },
        {"name": "Legal", "started_at": None, "decided_at": None, "cycle_seconds": None},
    ]
    assert [s["cycle_seconds"] for s in history["rounds"][1]["stages"]] == ["1800.000", "3600.000"]
    assert report["launch_variance"] == {
        "planned_start_at": "2030-01-05T00:00:00Z",
        "launched_at": "2030-01-04T23:59:00Z",
        "seconds": "-60.000",
    }
    first = (await get(client, tenant, f"/v1/campaigns/{c1}/report"))["approvals"]
    assert first["first_time_approved"] is True
    pending = (await get(client, tenant, f"/v1/campaigns/{c3}/report"))["approvals"]
    assert pending["first_time_approved"] is None
    [open_round] = pending["rounds"]
    assert (open_round["status"], open_round["decided_at"], open_round["cycle_seconds"]) == (
        "pending",
        None,
        None,
    )

    # An empty range: counts 0, every figure null.
    empty = await get(
        client,
        tenant,
        "/v1/reports/overview",
        **{"from": "2031-01-01T00:00:00Z", "to": "2031-01-02T00:00:00Z"},
    )
    nothing = {"count": 0, "mean": None, "median": None, "p90": None, "min": None, "max": None}
    assert empty["approvals"] == {
        "overall": nothing,
        "stages": [],
        "first_time_approval": {"campaigns": 0, "approved_first_time": 0, "rate": None},
    }
    assert empty["launch_variance"] == nothing
    # Launched, never finished: still live a year on (with nothing earned or spent).
    assert [row["name"] for row in empty["campaigns"]] == ["C0", "C1", "C2"]
    [totals] = empty["totals"]
    assert (totals["currency"], totals["spend"], totals["campaigns"]) == (None, "0.00", 3)
