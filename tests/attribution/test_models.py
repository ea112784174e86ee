"""Attribution models on hand-computed journeys: exact credit and revenue per group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tests.attribution.helpers import PURCHASE, Shop, credit, report
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

T = datetime(2030, 1, 20, tzinfo=UTC)  # the conversion
DAY = timedelta(days=1)
RANGE = {"from": "2030-01-01T00:00:00Z", "to": "2030-02-01T00:00:00Z"}
D = Decimal


@pytest.fixture
def shop(session_factory: Factory, tenant: Tenant) -> Shop:
    return Shop(session_factory, tenant)


async def three_campaign_journey(shop: Shop) -> dict[str, str]:
    """One contact touched by A (delivered), B (SMS, delivered) and C (clicked, no delivery
    report), then buying for 100.00; plus touches that must not count."""
    a = await shop.campaign("A", PURCHASE)
    b = await shop.campaign("B")  # no goal: its touches still count
    c = await shop.campaign("C", {"event_type": "signup", "window": "P1D"})
    x = await shop.contact()
    await shop.touch(a, x, sent=T - 31 * DAY, delivered=T - 31 * DAY, step_key="old")  # too old
    await shop.touch(a, x, sent=T - 10 * DAY - timedelta(minutes=1), delivered=T - 10 * DAY)
    await shop.touch(b, x, sent=T - 5 * DAY, delivered=T - 5 * DAY, channel="sms", step_key="sms")
    # Clicked without a delivery report: touch time = sent_at (T - 2d).
    await shop.touch(c, x, sent=T - 2 * DAY, clicked=T - DAY, variant="B")
    await shop.touch(a, x, sent=T - 3 * DAY, step_key="sent_only")  # never delivered nor clicked
    await shop.touch(b, x, sent=T - DAY, delivered=T + timedelta(hours=1), step_key="late")
    await shop.event(x, "purchase", T, revenue="100.00")
    return {"A": str(a), "B": str(b), "C": str(c)}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("first_touch", {"A": ("1", "100"), "B": ("0", "0"), "C": ("0", "0")}),
        ("last_touch", {"A": ("0", "0"), "B": ("0", "0"), "C": ("1", "100")}),
        (
            "linear",
            {
                "A": ("0.333333", "33.3333"),
                "B": ("0.333333", "33.3333"),
                "C": ("0.333334", "33.3334"),
            },
        ),
        ("position_based", {"A": ("0.4", "40"), "B": ("0.2", "20"), "C": ("0.4", "40")}),
    ],
)
async def test_three_campaigns_each_model(
    client: httpx.AsyncClient,
    tenant: Tenant,
    shop: Shop,
    model: str,
    expected: dict[str, tuple[str, str]],
) -> None:
    ids = await three_campaign_journey(shop)
    body = await report(client, tenant, model=model, **RANGE)
    got = credit(body, "campaign_id")
    assert got == {
        (ids[name],): (D(conversions), D(revenue), 1)
        for name, (conversions, revenue) in expected.items()
    }
    names = {g["campaign_id"]: g["campaign_name"] for g in body["groups"]}
    assert names == {ids["A"]: "A", ids["B"]: "B", ids["C"]: "C"}
    assert body["totals"] == {
        "conversions": 1,
        "attributed": 1,
        "unattributed": 0,
        "revenue": "100.0000",
        "attributed_revenue": "100.0000",
        "unattributed_revenue": "0.0000",
        "touches": 3,
    }
    assert sum(D(g["conversions"]) for g in body["groups"]) == 1
    assert sum(D(g["revenue"]) for g in body["groups"]) == 100
    assert (body["model"], body["group_by"], body["lookback"]) == (model, "campaign", "P30D")
    assert (body["from"], body["to"]) == ("2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")
    assert (body["groups_total"], body["truncated"]) == (3, False)
    # Most credited first.
    assert [D(g["conversions"]) for g in body["groups"]] == sorted(
        (D(g["conversions"]) for g in body["groups"]), reverse=True
    )


async def test_touches_outside_the_lookback_are_ignored(
    client: httpx.AsyncClient, tenant: Tenant, shop: Shop
) -> None:
    a = await shop.campaign("A", PURCHASE)
    x = await shop.contact()
    await shop.touch(a, x, sent=T - 2 * DAY, delivered=T - DAY - timedelta(seconds=1), step_key="a")
    await shop.touch(a, x, sent=T - 2 * DAY, delivered=T - DAY, step_key="edge")  # exactly P1D
    await shop.touch(a, x, sent=T, delivered=T, step_key="same_instant")
    await shop.touch(a, x, sent=T, delivered=T + timedelta(seconds=1), step_key="after")
    await shop.event(x, "purchase", T, revenue="10")
    body = await report(client, tenant, model="linear", group_by="step", lookback="P1D", **RANGE)
    assert credit(body, "step_key") == {
        ("edge",): (D("0.5"), D("5"), 1),
        ("same_instant",): (D("0.5"), D("5"), 1),
    }
    # With the default lookback (P30D) the first one counts too.
    body = await report(client, tenant, model="first_touch", group_by="step", **RANGE)
    assert credit(body, "step_key")[("a",)] == (D(1), D(10), 1)
    assert body["totals"]["touches"] == 3


async def test_conversion_without_touches_is_unattributed(
    client: httpx.AsyncClient, tenant: Tenant, shop: Shop
) -> None:
    a = await shop.campaign("A", PURCHASE)
    x, y = await shop.contact(), await shop.contact()
    await shop.touch(a, x, sent=T - DAY, delivered=T - DAY)
    await shop.event(x, "purchase", T, revenue="20.5")
    await shop.event(y, "purchase", T, revenue="7.25")  # never touched
    await shop.event(y, "purchase", T + DAY)  # no revenue: counts 0
    body = await report(client, tenant, model="position_based", **RANGE)
    assert body["totals"] == {
        "conversions": 3,
        "attributed": 1,
        "unattributed": 2,
        "revenue": "27.7500",
        "attributed_revenue": "20.5000",
        "unattributed_revenue": "7.2500",
        "touches": 1,
    }
    assert credit(body, "campaign_id") == {(str(a),): (D(1), D("20.5"), 1)}


async def test_no_conversions_at_all(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = await report(client, tenant, **RANGE)
    assert body["groups"] == []
    assert body["totals"]["conversions"] == 0
    assert body["totals"]["revenue"] == "0.0000"
    assert (body["groups_total"], body["truncated"]) == (0, False)


@pytest.mark.parametrize(
    ("touches", "expected"),
    [
        (1, [("1", "9.99")]),
        (2, [("0.5", "4.995"), ("0.5", "4.995")]),
        (3, [("0.4", "3.996"), ("0.2", "1.998"), ("0.4", "3.996")]),
        (4, [("0.4", "3.996"), ("0.1", "0.999"), ("0.1", "0.999"), ("0.4", "3.996")]),
        # 0.2 / 3 = 0.0666..: truncated to 0.066666 (revenue 0.666); the last touch takes the
        # remainder: 1 - 0.4 - 3 x 0.066666 and 9.99 - 3.996 - 3 x 0.666.
        (
            5,
            [
                ("0.4", "3.996"),
                ("0.066666", "0.666"),
                ("0.066666", "0.666"),
                ("0.066666", "0.666"),
                ("0.400002", "3.996"),
            ],
        ),
    ],
)
async def test_position_based_edges(
    client: httpx.AsyncClient,
    tenant: Tenant,
    shop: Shop,
    touches: int,
    expected: list[tuple[str, str]],
) -> None:
    a = await shop.campaign("A", PURCHASE)
    x = await shop.contact()
    for i in range(touches):
        at = T - (touches - i) * DAY
        await shop.touch(a, x, sent=at, delivered=at, step_key=f"s{i}")
    await shop.event(x, "purchase", T, revenue="9.99")
    body = await report(client, tenant, model="position_based", group_by="step", **RANGE)
    assert credit(body, "step_key") == {
        (f"s{i}",): (D(conversions), D(revenue), 1)
        for i, (conversions, revenue) in enumerate(expected)
    }
    assert sum(D(g["conversions"]) for g in body["groups"]) == 1
    assert sum(D(g["revenue"]) for g in body["groups"]) == D("9.99")


async def test_linear_remainder_goes_to_the_last_touch(
    client: httpx.AsyncClient, tenant: Tenant, shop: Shop
) -> None:
    a = await shop.campaign("A", PURCHASE)
    x = await shop.contact()
    for i in range(7):
        at = T - (7 - i) * DAY
        await shop.touch(a, x, sent=at, delivered=at, step_key=f"s{i}")
    await shop.event(x, "purchase", T, revenue="1.00")
    body = await report(client, tenant, model="linear", group_by="step", **RANGE)
    got = credit(body, "step_key")
    # 1/7 = 0.142857142..: six touches get 0.142857 (revenue 0.1428), the last the rest.
    assert {got[(f"s{i}",)] for i in range(6)} == {(D("0.142857"), D("0.1428"), 1)}
    assert got[("s6",)] == (D("0.142858"), D("0.1432"), 1)


async def test_grouping_by_step_variant_channel(
    client: httpx.AsyncClient, tenant: Tenant, shop: Shop
) -> None:
    a = await shop.campaign("A", PURCHASE)
    b = await shop.campaign("B", PURCHASE)
    x, y = await shop.contact(), await shop.contact()
    # x: A hello/A (email), A nudge (sms, no variant), B hello/B (email); buys for 90.
    await shop.touch(a, x, sent=T - 6 * DAY, delivered=T - 6 * DAY, variant="A")
    await shop.touch(a, x, sent=T - 4 * DAY, delivered=T - 4 * DAY, step_key="nudge", channel="sms")
    await shop.touch(b, x, sent=T - 2 * DAY, delivered=T - 2 * DAY, variant="B")
    await shop.event(x, "purchase", T, revenue="90")
    # y: A hello/B only; buys for 40.
    await shop.touch(a, y, sent=T - 3 * DAY, delivered=T - 3 * DAY, variant="B")
    await shop.event(y, "purchase", T, revenue="40")
    third, rest = D("0.333333"), D("0.333334")

    body = await report(client, tenant, model="linear", group_by="step", **RANGE)
    assert credit(body, "campaign_id", "step_key") == {
        (str(a), "hello"): (third + 1, D(70), 2),
        (str(a), "nudge"): (third, D(30), 1),
        (str(b), "hello"): (rest, D(30), 1),
    }
    assert {g["variant"] for g in body["groups"]} == {None}
    assert {g["channel"] for g in body["groups"]} == {None}

    body = await report(client, tenant, model="linear", group_by="variant", **RANGE)
    assert credit(body, "campaign_id", "step_key", "variant") == {
        (str(a), "hello", "A"): (third, D(30), 1),
        (str(a), "hello", "B"): (D(1), D(40), 1),
        (str(a), "nudge", None): (third, D(30), 1),
        (str(b), "hello", "B"): (rest, D(30), 1),
    }

    body = await report(client, tenant, model="linear", group_by="channel", **RANGE)
    assert credit(body, "channel") == {
        ("email",): (third + rest + 1, D(100), 3),
        ("sms",): (third, D(30), 1),
    }
    assert {g["campaign_id"] for g in body["groups"]} == {None}

    body = await report(client, tenant, model="linear", **RANGE)
    assert credit(body, "campaign_id") == {
        (str(a),): (third + third + 1, D(100), 3),
        (str(b),): (rest, D(30), 1),
    }
    assert body["totals"]["attributed"] == 2
    assert body["totals"]["attributed_revenue"] == "130.0000"


async def test_two_conversions_by_one_contact(
    client: httpx.AsyncClient, tenant: Tenant, shop: Shop
) -> None:
    a = await shop.campaign("A", PURCHASE)
    b = await shop.campaign("B")
    x = await shop.contact()
    await shop.touch(a, x, sent=T - 10 * DAY, delivered=T - 10 * DAY)
    await shop.touch(b, x, sent=T - 3 * DAY, delivered=T - 3 * DAY)
    await shop.event(x, "purchase", T - 5 * DAY, revenue="10")  # only A precedes it
    await shop.event(x, "purchase", T, revenue="20")  # A then B
    body = await report(client, tenant, model="first_touch", **RANGE)
    assert credit(body, "campaign_id") == {(str(a),): (D(2), D(30), 2), (str(b),): (D(0), D(0), 1)}
    body = await report(client, tenant, model="last_touch", **RANGE)
    assert credit(body, "campaign_id") == {(str(a),): (D(1), D(10), 2), (str(b),): (D(1), D(20), 1)}
    assert body["totals"]["conversions"] == 2
    assert body["totals"]["touches"] == 3


async def test_only_goal_types_in_the_range_count(
    client: httpx.AsyncClient, tenant: Tenant, shop: Shop
) -> None:
    a = await shop.campaign("A", PURCHASE)
    await shop.campaign("C", {"event_type": "signup", "window": "P1D"})
    x = await shop.contact()
    await shop.touch(a, x, sent=T - DAY, delivered=T - DAY, clicked=T - DAY)
    await shop.event(x, "purchase", T, revenue="5")
    await shop.event(x, "signup", T)  # another campaign's goal: a conversion too
    await shop.event(x, "page.viewed", T, revenue="1000")  # no campaign's goal
    await shop.event(x, "email.clicked", T)
    await shop.event(x, "purchase", datetime(2030, 2, 1, tzinfo=UTC), revenue="1")  # at `to`
    await shop.event(x, "purchase", datetime(2030, 1, 1, tzinfo=UTC), revenue="2")  # at `from`
    body = await report(client, tenant, model="last_touch", **RANGE)
    assert body["totals"]["conversions"] == 3
    assert body["totals"]["attributed"] == 2
    assert body["totals"]["unattributed"] == 1  # the one at `from`: before the touch
    assert body["totals"]["revenue"] == "7.0000"
    assert credit(body, "campaign_id") == {(str(a),): (D(2), D(5), 2)}
