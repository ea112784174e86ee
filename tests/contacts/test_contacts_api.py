"""Contacts CRUD, PATCH merge semantics, filters and validation errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.clock import clock
from tests.fixtures.tenants import Tenant

PROBLEM = "application/problem+json"


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/contacts", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_contact_lifecycle(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await create(
        client,
        tenant,
        external_id="crm-1",
        email="  Ana.Lima@Example.COM ",
        phone="+351 912-345.678",
        timezone="Europe/Lisbon",
        locale="pt-PT",
        attributes={"plan": "pro", "seats": 3, "gone": None},
    )
    assert contact["email"] == "ana.lima@example.com"
    assert contact["phone"] == "+351912345678"
    assert contact["attributes"] == {"plan": "pro", "seats": 3}

    fetched = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json() == contact

    deleted = await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert gone.status_code == 404
    assert gone.headers["content-type"] == PROBLEM
    again = await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert again.status_code == 404


async def test_duplicates_are_409(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await create(client, tenant, external_id="crm-1", email="a@example.com")
    for body, field in (
        ({"external_id": "crm-1"}, "external_id"),
        ({"email": "A@example.com"}, "email"),
    ):
        response = await client.post("/v1/contacts", json=body, headers=tenant.headers)
        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["errors"][0]["pointer"] == f"/{field}"


async def test_patch_merges_attributes_and_replaces_fields(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    contact = await create(
        client,
        tenant,
        email="a@example.com",
        timezone="Europe/Paris",
        attributes={"plan": "pro", "trial": True, "prefs": {"color": "red", "size": "m"}},
    )
    clock.freeze(datetime.now(UTC) + timedelta(minutes=5))
    response = await client.patch(
        f"/v1/contacts/{contact['id']}",
        json={
            "timezone": None,
            "locale": "fr",
            "attributes": {"trial": None, "plan": "team", "prefs": {"color": "blue"}},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["attributes"] == {"plan": "team", "prefs": {"color": "blue"}}
    assert patched["timezone"] is None
    assert patched["locale"] == "fr"
    assert patched["email"] == "a@example.com"
    assert patched["updated_at"] > contact["updated_at"]


async def test_patch_identity_rules(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await create(client, tenant, email="a@example.com", external_id="x-1")
    await create(client, tenant, email="b@example.com", external_id="x-2")
    url = f"/v1/contacts/{first['id']}"

    taken = await client.patch(url, json={"email": "B@example.com"}, headers=tenant.headers)
    assert taken.status_code == 409
    assert taken.json()["errors"][0]["pointer"] == "/email"
    taken = await client.patch(url, json={"external_id": "x-2"}, headers=tenant.headers)
    assert taken.status_code == 409

    clear_one = await client.patch(url, json={"external_id": None}, headers=tenant.headers)
    assert clear_one.status_code == 200
    assert clear_one.json()["external_id"] is None
    clear_both = await client.patch(url, json={"email": None}, headers=tenant.headers)
    assert clear_both.status_code == 422
    assert clear_both.json()["errors"][0]["pointer"] == "/email"
    same = await client.patch(url, json={"email": "a@example.com"}, headers=tenant.headers)
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, ""),
        ({"email": "not-an-email"}, "/email"),
        ({"email": "a@example.com", "phone": "12345"}, "/phone"),
        ({"email": "a@example.com", "timezone": "Mars/Olympus"}, "/timezone"),
        ({"email": "a@example.com", "timezone": "../etc/passwd"}, "/timezone"),
        ({"email": "a@example.com", "locale": "english please"}, "/locale"),
        ({"email": "a@example.com", "attributes": {"bad key": 1}}, "/attributes/bad key/[key]"),
        (
            {"email": "a@example.com", "attributes": {"n": {"a": {"b": {"c": {"d": 1}}}}}},
            "/attributes/n",
        ),
        ({"email": "a@example.com", "attributes": {"l": [1, {"x": 1}]}}, "/attributes/l"),
        ({"email": "a@example.com", "attributes": {"s": "x" * 3000}}, "/attributes/s"),
        ({"email": "a@example.com", "attributes": {"s": "a\u0000b"}}, "/attributes/s"),
        ({"external_id": "a\u0000b"}, "/external_id"),
        ({"email": "a@example.com", "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70"}, "/id"),
    ],
)
async def test_validation_errors_point_at_the_field(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], pointer: str
) -> None:
    response = await client.post("/v1/contacts", json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    pointers = [error["pointer"] for error in response.json()["errors"]]
    assert pointer in pointers


async def test_attribute_limits(client: httpx.AsyncClient, tenant: Tenant) -> None:
    many = {f"k{i}": i for i in range(101)}
    response = await client.post(
        "/v1/contacts", json={"email": "a@example.com", "attributes": many}, headers=tenant.headers
    )
    assert response.status_code == 422
    nested = {"a": {"b": {"c": "ok", "d": None}}, "l": ["x", 1, 2.5, True]}
    ok = await create(client, tenant, email="b@example.com", attributes=nested)
    assert ok["attributes"] == {"a": {"b": {"c": "ok"}}, "l": ["x", 1, 2.5, True]}


async def test_filters(client: httpx.AsyncClient, tenant: Tenant) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    clock.freeze(start)
    pro = await create(client, tenant, email="pro@example.com", attributes={"plan": "pro"})
    clock.advance(timedelta(days=1))
    team = await create(
        client, tenant, external_id="t-1", attributes={"plan": "team", "seats": 12, "vip": True}
    )
    clock.advance(timedelta(days=1))
    text_seats = await create(client, tenant, email="s@example.com", attributes={"seats": "12"})
    clock.advance(timedelta(days=1))
    await client.patch(f"/v1/contacts/{pro['id']}", json={"locale": "en"}, headers=tenant.headers)

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/v1/contacts", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["data"]]

    assert await ids() == [text_seats["id"], team["id"], pro["id"]]
    assert await ids(email="PRO@example.com") == [pro["id"]]
    assert await ids(external_id="t-1") == [team["id"]]
    assert await ids(attribute="plan:pro") == [pro["id"]]
    assert await ids(attribute=["plan:team", "seats:12", "vip:true"]) == [team["id"]]
    assert await ids(attribute='seats:"12"') == [text_seats["id"]]
    assert await ids(attribute=["plan:team", "plan:pro"]) == []
    day = timedelta(days=1)
    assert await ids(created_after=(start + day / 2).isoformat()) == [text_seats["id"], team["id"]]
    assert await ids(
        created_after=(start + day / 2).isoformat(), created_before=(start + day * 1.5).isoformat()
    ) == [team["id"]]
    assert await ids(updated_after=(start + day * 2.5).isoformat()) == [pro["id"]]
    assert await ids(updated_before=(start + day / 2).isoformat()) == []
    # `_after` is inclusive, `_before` exclusive: windows [a, b), [b, c) partition the list.
    assert await ids(created_after=team["created_at"]) == [text_seats["id"], team["id"]]
    assert await ids(created_before=team["created_at"]) == [pro["id"]]

    page = await client.get("/v1/contacts", params={"limit": 2}, headers=tenant.headers)
    second = await client.get(
        "/v1/contacts",
        params={"limit": 2, "cursor": page.json()["next_cursor"]},
        headers=tenant.headers,
    )
    assert [c["id"] for c in second.json()["data"]] == [pro["id"]]


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"attribute": "no-colon"}, "/attribute/0"),
        ({"attribute": "bad key:1"}, "/attribute/0"),
        ({"attribute": "k:[1]"}, "/attribute/0"),
        # JSON escapes spell what PostgreSQL text/JSONB cannot hold (was a 500).
        ({"attribute": 'k:"\\u0000"'}, "/attribute/0"),
        ({"attribute": ["plan:pro", 'k:"\\ud800"']}, "/attribute/1"),
        ({"email": "a\u0000"}, "/email"),
        ({"created_after": "2026-11-01T00:00:00"}, "/created_after"),
        ({"created_before": "0001-01-01T00:00:00+01:00"}, "/created_before"),
        ({"updated_after": "9999-12-31T23:59:59-01:00"}, "/updated_after"),
        # Regression (issue 16): epoch numbers were read as 1970.
        ({"updated_after": "-1.5"}, "/updated_after"),
        ({"created_before": "0.5"}, "/created_before"),
        ({"created_after": "1700000000"}, "/created_after"),
        ({"created_after": "2026-11-01"}, "/created_after"),
    ],
)
async def test_bad_filters_are_422(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str | list[str]], pointer: str
) -> None:
    response = await client.get("/v1/contacts", params=params, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert pointer in [e["pointer"] for e in response.json()["errors"]]
