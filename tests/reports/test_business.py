"""Business figures on constructed data: spend, revenue, conversions, CPA, ROI, pacing;
zero denominators; the overview's grouping by currency and channel; no leakage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from app.core.clock import clock
from tests.fixtures.factories import Factory
from tests.fixtures.metrics import World
from tests.fixtures.tenants import Tenant
from tests.reports.helpers import get, money, record_spend, sale, shop

T = datetime(2030, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
RANGE = {"from": "2030-01-01T00:00:00Z", "to": "2030-01-31T00:00:00Z"}


async def _campaign_a(client: httpx.AsyncClient, tenant: Tenant, factory: Factory) -> World:
    """EUR 1,000 budget over 10 days; 450.00 spent; two conversions worth 150.50."""
    world = await shop(
        factory,
        tenant,
        segments=1,
        name="A",
        budget_amount=Decimal("1000.00"),
        budget_currency="EUR",
        start_at=T,
        end_at=T + 10 * D,
        launched_at=T,
    )
    await sale(world, sent=T + H, bought=T + 2 * H, revenue="100.00", variant="a", segment=0)
    await sale(world, sent=T + H, bought=T + 3 * H, revenue="50.50", channel="sms", variant="b")
    # Bought before the touch: not a conversion. Never bought: none either.
    await sale(world, sent=T + H, bought=T + H - timedelta(minutes=1), revenue="9", variant="a")
    await sale(world, sent=T + H, variant="b")
    cid = world.campaign_id
    await record_spend(client, tenant, cid, "300.00", "EUR", "email")
    await record_spend(client, tenant, cid, "100.00", "EUR", "sms")
    await record_spend(client, tenant, cid, "50.00", "EUR")
    return world


def _by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(row[k] for k in keys): row for row in rows}


async def test_campaign_report_business_figures_and_breakdowns(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    clock.freeze(T + 5 * D)
    world = await _campaign_a(client, tenant, session_factory)
    body = await get(client, tenant, f"/v1/campaigns/{world.campaign_id}/report")
    figures = body["figures"]
    assert figures["currency"] == "EUR"
    assert money(figures["budget"]) == Decimal("1000.00")
    assert money(figures["spend"]) == Decimal("450.00")
    assert money(figures["remaining"]) == Decimal("550.00")
    assert money(figures["revenue"]) == Decimal("150.50")
    assert figures["conversions"] == 2
    assert figures["cpa"] == "225.00"  # 450.00 / 2
    assert figures["roi"] == "-0.6656"  # (150.50 - 450) / 450 = -0.66555..., half-up
    assert (figures["spent_fraction"], figures["elapsed_fraction"]) == (0.45, 0.5)
    assert figures["pacing"] == 0.9
    assert figures["over_budget"] is False

    stats = body["stats"]
    assert (stats["totals"]["sent"], stats["totals"]["converted"]) == (4, 2)
    steps = _by(stats["steps"], "step_key")
    assert list(steps) == [("hello",)]
    assert (steps[("hello",)]["sent"], steps[("hello",)]["converted"]) == (4, 2)
    variants = _by(stats["variants"], "step_key", "variant")
    assert {k: (v["sent"], v["converted"], money(v["revenue"])) for k, v in variants.items()} == {
        ("hello", "a"): (2, 1, Decimal("100.00")),
        ("hello", "b"): (2, 1, Decimal("50.50")),
    }
    [segment] = stats["segments"]
    assert segment["segment_id"] == str(world.segment_ids[0])
    assert (segment["enrolled"], segment["converted"]) == (1, 1)
    assert money(segment["revenue"]) == Decimal("100.00")

    assert body["experiments"] == [
        {
            "step_key": "hello",
            "metric": "conversion",
            "status": "collecting",  # under the default minimum sample of 100
            "leader": None,
            "winner": None,
        }
    ]
    assert body["experiments_url"] == f"/v1/campaigns/{world.campaign_id}/experiments"
    assert body["approvals"] == {"rounds": [], "first_time_approved": None}
    assert body["launch_variance"] == {
        "planned_start_at": None,
        "launched_at": "2030-01-01T00:00:00Z",
        "seconds": None,
    }

    # Over budget: one more entry takes spend to 1,000.01.
    await record_spend(client, tenant, world.campaign_id, "550.01", "EUR")
    figures = (await get(client, tenant, f"/v1/campaigns/{world.campaign_id}/report"))["figures"]
    assert (figures["over_budget"], money(figures["remaining"])) == (True, Decimal("-0.01"))
    assert figures["cpa"] == "500.01"  # 1000.01 / 2 = 500.005 -> half-up


async def test_zero_denominators_are_null(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    clock.freeze(T)
    # No spend, no conversion, no budget: CPA and ROI null, pacing null.
    bare = await shop(session_factory, tenant, name="Bare")
    figures = (await get(client, tenant, f"/v1/campaigns/{bare.campaign_id}/report"))["figures"]
    assert figures == {
        "currency": None,
        "budget": None,
        "spend": "0.00",
        "remaining": None,
        "revenue": figures["revenue"],
        "conversions": 0,
        "cpa": None,
        "roi": None,
        "spent_fraction": None,
        "elapsed_fraction": None,
        "pacing": None,
        "over_budget": False,
    }
    assert money(figures["revenue"]) == 0
    # Spend but no conversion: CPA null, ROI -1. A conversion but no spend: CPA 0, ROI null.
    spent = await shop(
        session_factory, tenant, budget_amount=Decimal("10.00"), budget_currency="EUR"
    )
    await record_spend(client, tenant, spent.campaign_id, "4.00", "EUR")
    figures = (await get(client, tenant, f"/v1/campaigns/{spent.campaign_id}/report"))["figures"]
    assert (figures["cpa"], figures["roi"]) == (None, "-1.0000")
    earned = await shop(session_factory, tenant)
    await sale(earned, sent=T - 2 * H, bought=T - H, revenue="5")
    figures = (await get(client, tenant, f"/v1/campaigns/{earned.campaign_id}/report"))["figures"]
    assert (figures["conversions"], figures["cpa"], figures["roi"]) == (1, "0.00", None)


async def test_overview_groups_by_currency_and_channel_without_leakage(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: Factory,
) -> None:
    clock.freeze(T + 5 * D)
    a = await _campaign_a(client, tenant, session_factory)
    a2 = await shop(
        session_factory,
        tenant,
        name="A2",
        budget_amount=Decimal("100.00"),
        budget_currency="EUR",
        launched_at=T + 3 * D,
    )
    await record_spend(client, tenant, a2.campaign_id, "50.00", "EUR", "email")
    b = await shop(
        session_factory,
        tenant,
        name="B",
        budget_amount=Decimal("500.00"),
        budget_currency="USD",
        launched_at=T + D,
    )
    await record_spend(client, tenant, b.campaign_id, "200.00", "USD", "email")
    await sale(b, sent=T + D, bought=T + D + H, revenue="300")
    c = await shop(session_factory, tenant, name="C", launched_at=T + 2 * D)
    await sale(c, sent=T + 2 * D, bought=T + 2 * D + H, revenue="10")
    # Not live in the range: launched after it, finished before it, never launched.
    await shop(session_factory, tenant, name="Later", launched_at=T + 40 * D)
    await shop(session_factory, tenant, name="Earlier", launched_at=T - 10 * D, finished_at=T - D)
    await shop(session_factory, tenant, name="Draft", status="draft")
    # Another workspace's campaign, live and earning, in EUR.
    theirs = await shop(
        session_factory,
        other_tenant,
        name="Theirs",
        budget_amount=Decimal("900.00"),
        budget_currency="EUR",
        launched_at=T,
    )
    await record_spend(client, other_tenant, theirs.campaign_id, "700.00", "EUR", "email")
    await sale(theirs, sent=T + H, bought=T + 2 * H, revenue="1000")

    body = await get(client, tenant, "/v1/reports/overview", **RANGE)
    assert (body["from"], body["to"], body["truncated"]) == (RANGE["from"], RANGE["to"], False)
    assert [row["name"] for row in body["campaigns"]] == ["A", "B", "C", "A2"]
    rows = {row["name"]: row["figures"] for row in body["campaigns"]}
    assert (rows["B"]["currency"], rows["B"]["cpa"], rows["B"]["roi"]) == (
        "USD",
        "200.00",
        "0.5000",
    )
    assert (rows["A2"]["cpa"], rows["A2"]["roi"]) == (None, "-1.0000")

    def figures(row: dict[str, Any]) -> tuple[Any, ...]:
        return (
            money(row["revenue"]),
            money(row["spend"]),
            row["conversions"],
            row["cpa"],
            row["roi"],
        )

    totals = {row["currency"]: (row["campaigns"], *figures(row)) for row in body["totals"]}
    assert [row["currency"] for row in body["totals"]] == ["EUR", "USD", None]
    assert totals == {
        # (150.50 - 500) / 500 = -0.699; 500 / 2 = 250
        "EUR": (2, Decimal("150.50"), Decimal("500.00"), 2, "250.00", "-0.6990"),
        "USD": (1, Decimal("300"), Decimal("200.00"), 1, "200.00", "0.5000"),
        None: (1, Decimal("10"), Decimal("0.00"), 1, "0.00", None),
    }
    channels = [(row["currency"], row["channel"], *figures(row)) for row in body["channels"]]
    assert channels == [
        # email: 300 (A) + 50 (A2) spent, 100 earned: (100 - 350) / 350 = -0.714285...
        ("EUR", "email", Decimal("100.00"), Decimal("350.00"), 1, "350.00", "-0.7143"),
        ("EUR", "sms", Decimal("50.50"), Decimal("100.00"), 1, "100.00", "-0.4950"),
        ("EUR", None, Decimal("0"), Decimal("50.00"), 0, None, "-1.0000"),
        ("USD", "email", Decimal("300"), Decimal("200.00"), 1, "200.00", "0.5000"),
        (None, "email", Decimal("10"), Decimal("0"), 1, "0.00", None),
    ]
    assert str(a.campaign_id) in {row["campaign_id"] for row in body["campaigns"]}

    # The other workspace sees only its own campaign.
    theirs_body = await get(client, other_tenant, "/v1/reports/overview", **RANGE)
    assert [row["name"] for row in theirs_body["campaigns"]] == ["Theirs"]
    [eur] = theirs_body["totals"]
    assert (eur["currency"], money(eur["spend"]), money(eur["revenue"])) == (
        "EUR",
        Decimal("700.00"),
        Decimal("1000"),
    )
