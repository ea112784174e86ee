"""Spend entries and the budget view: validation, exact pacing numbers with a frozen clock,
over-budget, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.clock import clock
from tests.fixtures.campaigns import audit_rows, create, force_status
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

START = datetime(2030, 1, 1, tzinfo=UTC)
END = datetime(2030, 1, 11, tzinfo=UTC)  # ten days
BODY: dict[str, Any] = {
    "name": "Paid",
    "start_at": "2030-01-01T00:00:00Z",
    "end_at": "2030-01-11T00:00:00Z",
    "budget": {"amount": "1000", "currency": "EUR"},
}


def entry(amount: str, **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "currency": "EUR", "date": "2030-01-02", **extra}


async def test_spend_and_pacing(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await create(client, tenant, BODY)
    url = f"/v1/campaigns/{created['id']}"
    clock.freeze(START - timedelta(days=1))
    budget = (await client.get(f"{url}/budget", headers=tenant.headers)).json()
    assert budget == {
        "campaign_id": created["id"],
        "currency": "EUR",
        "budget": "1000.00",
        "spent": "0.00",
        "remaining": "1000.00",
        "spent_fraction": 0.0,
        "elapsed_fraction": 0.0,
        "pacing": None,
        "over_budget": False,
    }

    first = await client.post(
        f"{url}/spend", json=entry("150.25", channel="email", note="ESP"), headers=tenant.headers
    )
    assert first.status_code == 201, first.text
    assert first.json() | {"id": None, "created_at": None} == {
        "id": None,
        "campaign_id": created["id"],
        "amount": "150.25",
        "currency": "EUR",
        "date": "2030-01-02",
        "channel": "email",
        "note": "ESP",
        "created_at": None,
    }
    await client.post(f"{url}/spend", json=entry("149.75"), headers=tenant.headers)
    clock.freeze(START + timedelta(days=2, hours=12))  # a quarter of the schedule
    budget = (await client.get(f"{url}/budget", headers=tenant.headers)).json()
    assert budget["spent"] == "300.00"
    assert budget["remaining"] == "700.00"
    assert budget["spent_fraction"] == 0.3
    assert budget["elapsed_fraction"] == 0.25
    assert budget["pacing"] == 1.2
    assert budget["over_budget"] is False

    await client.post(f"{url}/spend", json=entry("700.01"), headers=tenant.headers)
    clock.freeze(END + timedelta(days=5))  # elapsed is clamped to the schedule
    budget = (await client.get(f"{url}/budget", headers=tenant.headers)).json()
    assert budget["remaining"] == "-0.01"
    assert budget["elapsed_fraction"] == 1.0
    assert budget["pacing"] == 1.0
    assert budget["over_budget"] is True

    listed = (await client.get(f"{url}/spend?limit=2", headers=tenant.headers)).json()
    assert [item["amount"] for item in listed["data"]] == ["700.01", "149.75"]
    rest = await client.get(f"{url}/spend?cursor={listed['next_cursor']}", headers=tenant.headers)
    assert [item["amount"] for item in rest.json()["data"]] == ["150.25"]
    recorded = await audit_rows(session_factory, created["id"], "campaign.spend_recorded")
    assert [row.data["amount"] for row in recorded if row.data] == ["150.25", "149.75", "700.01"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (entry("0"), "/amount"),
        (entry("-5"), "/amount"),
        (entry("1.001"), "/amount"),
        (entry("5", currency="USD"), "/currency"),
        (entry("5", currency="euro"), "/currency"),
        (entry("5", date="yesterday"), "/date"),
        (entry("5", channel="Paid Social"), "/channel"),
    ],
)
async def test_spend_validation(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], pointer: str
) -> None:
    created = await create(client, tenant, BODY)
    url = f"/v1/campaigns/{created['id']}"
    response = await client.post(f"{url}/spend", json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert pointer in [e["pointer"] for e in response.json()["errors"]]
    assert (await client.get(f"{url}/spend", headers=tenant.headers)).json()["data"] == []


async def test_spend_needs_a_budget_and_a_live_campaign(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    bare = await create(client, tenant, {"name": "No budget"})
    url = f"/v1/campaigns/{bare['id']}"
    response = await client.post(f"{url}/spend", json=entry("5"), headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "no_budget"
    budget = (await client.get(f"{url}/budget", headers=tenant.headers)).json()
    assert budget["budget"] is None
    assert budget["spent_fraction"] is None
    assert budget["over_budget"] is False

    archived = await create(client, tenant, BODY)
    await force_status(session_factory, archived["id"], "archived")
    response = await client.post(
        f"/v1/campaigns/{archived['id']}/spend", json=entry("5"), headers=tenant.headers
    )
    assert response.status_code == 409


async def test_zero_budget_is_over_on_any_spend(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create(client, tenant, {**BODY, "budget": {"amount": 0, "currency": "EUR"}})
    url = f"/v1/campaigns/{created['id']}"
    await client.post(f"{url}/spend", json=entry("0.01"), headers=tenant.headers)
    budget = (await client.get(f"{url}/budget", headers=tenant.headers)).json()
    assert budget["spent_fraction"] is None
    assert budget["over_budget"] is True
