"""GET /v1/attribution: defaults, validation (422 with pointers), scopes, cross-tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from app.attribution import service
from app.core.clock import clock
from tests.attribution.helpers import PURCHASE, Shop, credit, report
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant, make_key

T = datetime(2030, 1, 20, tzinfo=UTC)
DAY = timedelta(days=1)
RANGE = {"from": "2030-01-01T00:00:00Z", "to": "2030-02-01T00:00:00Z"}
PROBLEM = "application/problem+json"


async def test_default_range_is_the_last_30_days(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    shop = Shop(session_factory, tenant)
    a = await shop.campaign("A", PURCHASE)
    x = await shop.contact()
    await shop.touch(a, x, sent=T - 40 * DAY, delivered=T - 40 * DAY)
    await shop.event(x, "purchase", T - 31 * DAY, revenue="1")  # before the default range
    await shop.event(x, "purchase", T - 29 * DAY, revenue="2")
    await shop.event(x, "purchase", T, revenue="4")  # at now: excluded (half-open)
    clock.freeze(T)
    body = await report(client, tenant, lookback="P90D")
    assert (body["from"], body["to"]) == ("2029-12-21T00:00:00Z", "2030-01-20T00:00:00Z")
    assert (body["model"], body["group_by"], body["lookback"]) == ("last_touch", "campaign", "P90D")
    assert body["totals"]["conversions"] == 1
    assert credit(body, "campaign_id") == {(str(a),): (Decimal(1), Decimal(2), 1)}
    # Only `to`: `from` is 30 days before it.
    body = await report(client, tenant, to="2030-01-20T00:00:01Z", lookback="P90D")
    assert body["from"] == "2029-12-21T00:00:01Z"
    assert body["totals"]["conversions"] == 1 + 1
    # Default lookback P30D: the touch 11 days before the conversion at T-29d counts; with
    # P10D it is too old.
    assert (await report(client, tenant))["totals"]["attributed"] == 1
    assert (await report(client, tenant, lookback="P10D"))["totals"]["unattributed"] == 1


def _pointers(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return [(e["location"], e["pointer"]) for e in response.json()["errors"]]


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"model": "u_shaped"}, "/model"),
        ({"group_by": "segment"}, "/group_by"),
        ({"lookback": "P91D"}, "/lookback"),
        ({"lookback": "P1M"}, "/lookback"),  # months/years: ambiguous lengths, refused
        ({"lookback": "P1Y"}, "/lookback"),
        ({"lookback": "PT0S"}, "/lookback"),
        ({"lookback": "30 days"}, "/lookback"),
        ({"lookback": ""}, "/lookback"),
        ({"lookback": "P99999999999D"}, "/lookback"),
        ({"lookback": "P" + "9" * 40 + "D"}, "/lookback"),
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "/from"),
        ({"from": "2030-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "/from"),
        ({"from": "2029-01-01T00:00:00Z", "to": "2030-01-02T00:00:01Z"}, "/to"),
        ({"from": "yesterday"}, "/from"),
        ({"from": "2030-01-01T00:00:00"}, "/from"),  # no offset
        ({"to": "0001-01-01T00:00:00Z"}, "/to"),
        ({"from": "9999-12-31T00:00:00Z"}, "/from"),
    ],
)
async def test_validation_errors_point_at_the_parameter(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], pointer: str
) -> None:
    response = await client.get("/v1/attribution", params=params, headers=tenant.headers)
    assert ("query", pointer) in _pointers(response)


async def test_a_366_day_range_is_allowed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = await report(
        client, tenant, **{"from": "2028-01-01T00:00:00Z", "to": "2029-01-01T00:00:00Z"}
    )
    assert body["totals"]["conversions"] == 0


async def test_scopes(client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory) -> None:
    assert (await client.get("/v1/attribution")).status_code == 401
    for scopes, status in (
        (["metrics:read"], 200),
        (["read"], 200),
        (["campaigns:read"], 403),
        (["contacts:write"], 403),
    ):
        token = await make_key(session_factory, tenant, scopes)
        response = await client.get(
            "/v1/attribution", params=RANGE, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == status, (scopes, response.text)
        if status != 200:
            assert response.headers["content-type"].startswith(PROBLEM)


async def test_cross_tenant(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    ours, theirs = Shop(session_factory, tenant), Shop(session_factory, other_tenant)
    a = await ours.campaign("Ours", PURCHASE)
    z = await theirs.campaign("Theirs", {"event_type": "refund", "window": "P7D"})
    x = await ours.contact()
    y = await theirs.contact()
    await ours.touch(a, x, sent=T - 2 * DAY, delivered=T - 2 * DAY)
    # A message of the other workspace naming our contact must never count as our touch.
    foreign = await theirs.touch(z, x, sent=T - DAY, delivered=T - DAY)
    await ours.event(x, "purchase", T, revenue="10")
    await ours.event(x, "refund", T, revenue="-10")  # their goal type, not ours
    await theirs.touch(z, y, sent=T - DAY, delivered=T - DAY)
    await theirs.event(y, "refund", T, revenue="3")
    await theirs.event(y, "purchase", T, revenue="99")  # our goal type, not theirs

    body = await report(client, tenant, model="linear", group_by="variant", **RANGE)
    assert credit(body, "campaign_id") == {(str(a),): (Decimal(1), Decimal(10), 1)}
    assert body["totals"]["conversions"] == 1
    text = str(body)
    for foreign_id in (z, y, foreign):
        assert str(foreign_id) not in text

    other = await report(client, other_tenant, model="linear", **RANGE)
    assert credit(other, "campaign_id") == {(str(z),): (Decimal(1), Decimal(3), 1)}
    assert other["totals"]["conversions"] == 1
    assert other["totals"]["revenue"] == "3.0000"
    for own_id in (a, x):
        assert str(own_id) not in str(other)


async def test_truncation_keeps_totals(tenant: Tenant, session_factory: Factory) -> None:
    shop = Shop(session_factory, tenant)
    a = await shop.campaign("A", PURCHASE)
    x, y = await shop.contact(), await shop.contact()
    for i in range(3):
        at = T - (3 - i) * DAY
        await shop.touch(a, x, sent=at, delivered=at, step_key=f"s{i}")
    await shop.event(x, "purchase", T, revenue="6")
    await shop.event(y, "purchase", T, revenue="1")
    async with session_factory() as session:
        body = await service.attribution_report(
            session,
            tenant.workspace_id,
            model="linear",
            group_by="step",
            start=datetime(2030, 1, 1, tzinfo=UTC),
            end=datetime(2030, 2, 1, tzinfo=UTC),
            lookback=None,
            max_groups=2,
        )
    assert (body.groups_total, body.truncated, len(body.groups)) == (3, True, 2)
    totals = body.totals
    assert (totals.attributed, totals.unattributed, totals.touches) == (1, 1, 3)
    assert (totals.attributed_revenue, totals.revenue) == (Decimal(6), Decimal(7))
    # The most credited first: the last touch holds the remainder (0.333334).
    assert [g.step_key for g in body.groups] == ["s2", "s0"]
    assert body.groups[0].conversions == Decimal("0.333334")
