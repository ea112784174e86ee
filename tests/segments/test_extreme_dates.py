"""Rule timestamps at the edges of the calendar: an instant outside years 1-9999 once in UTC
is a 422 pointing at the value (it was a 500 "date value out of range"); the last and first
representable instants still work."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.tenants import Tenant

LATE = "9999-12-31T23:59:59-14:00"  # 10000-01-01T13:59:59Z
EARLY = "0001-01-01T00:00:00+14:00"  # 0000-12-31T10:00:00Z


def _created(op: str, value: Any) -> dict[str, Any]:
    return {"attribute": {"field": "created_at", "op": op, "value": value}}


@pytest.mark.parametrize(
    ("rule", "pointer"),
    [
        (_created("before", LATE), "/rule/attribute/value"),
        (_created("after", EARLY), "/rule/attribute/value"),
        (_created("between", [EARLY, "2026-01-01T00:00:00Z"]), "/rule/attribute/value"),
        (_created("between", ["2026-01-01T00:00:00Z", LATE]), "/rule/attribute/value"),
        ({"all": [{"not": _created("after", LATE)}]}, "/rule/all/0/not/attribute/value"),
    ],
)
async def test_out_of_range_instants_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, rule: dict[str, Any], pointer: str
) -> None:
    for path, body in (
        ("/v1/segments/preview", {"rule": rule}),
        ("/v1/segments", {"name": "Edge", "rule": rule}),
    ):
        response = await client.post(path, json=body, headers=tenant.headers)
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]
        assert [error["pointer"] for error in errors] == [pointer]
        assert "years 0001-9999 in UTC" in errors[0]["message"]


@pytest.mark.parametrize(
    "rule",
    [
        _created("before", "9999-12-31T23:59:59Z"),
        _created("before", "9999-12-31T23:59:59+14:00"),
        _created("after", "0001-01-01T00:00:00Z"),
        _created("after", "0001-01-01T00:00:00-14:00"),
        _created("between", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"]),
    ],
)
async def test_the_calendar_edges_themselves_evaluate(
    client: httpx.AsyncClient, tenant: Tenant, rule: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/segments/preview", json={"rule": rule}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
