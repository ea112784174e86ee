"""Suppression list: hashing, idempotent create, filters, delete rules, set-wise check."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.contacts.consent.addresses import address_hash
from app.contacts.consent.service import is_suppressed, suppressed_addresses
from app.contacts.models import Suppression
from app.core.db import transaction
from tests.fixtures.tenants import Tenant


async def suppress(
    client: httpx.AsyncClient, tenant: Tenant, address: str, channel: str = "email", **body: str
) -> httpx.Response:
    return await client.post(
        "/v1/suppressions",
        json={"channel": channel, "address": address, **body},
        headers=tenant.headers,
    )


def test_hash_is_sha256_of_channel_and_normalised_address() -> None:
    expected = hashlib.sha256(b"email:ana@example.com").hexdigest()
    assert address_hash("email", "  Ana@Example.COM ") == expected
    assert (
        address_hash("sms", "+1 (415) 555-0123") == hashlib.sha256(b"sms:+14155550123").hexdigest()
    )
    with pytest.raises(ValueError, match=r"E\.164"):
        address_hash("sms", "0415 555")
    with pytest.raises(ValueError, match="email"):
        address_hash("email", "no-at-sign")


async def test_create_stores_only_the_hash_and_is_idempotent(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    created = await suppress(
        client, tenant, "Ana@Example.com", reason="hard_bounce", note="550", source="ses"
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["address_hash"] == hashlib.sha256(b"email:ana@example.com").hexdigest()
    assert (body["reason"], body["note"], body["source"]) == ("hard_bounce", "550", "ses")
    assert "address" not in body

    again = await suppress(client, tenant, " ana@example.COM", reason="manual", note="other")
    assert again.status_code == 200
    assert again.json() == body  # the existing entry, unchanged

    async with transaction(session_factory) as session:
        count = await session.scalar(select(func.count()).select_from(Suppression))
        stored = (await session.execute(select(Suppression))).scalar_one()
    assert count == 1
    assert "ana@example.com" not in repr(vars(stored)).lower()

    # same address on another channel or in another workspace is another entry
    sms = await suppress(client, tenant, "+14155550123", channel="sms")
    assert sms.status_code == 201
    assert sms.json()["reason"] == "manual"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"channel": "email", "address": "nope"}, "/address"),
        ({"channel": "sms", "address": "12345"}, "/address"),
        ({"channel": "fax", "address": "a@b.c"}, "/channel"),
        ({"channel": "email", "address": "a@b.c", "reason": "erased"}, "/reason"),
        ({"channel": "email", "address": ""}, "/address"),
        ({"channel": "email"}, "/address"),
        ({"channel": "email", "address": "a\x00@b.c"}, "/address"),
        ({"channel": "email", "address": "a@b.c", "note": "\x00"}, "/note"),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, str], pointer: str
) -> None:
    response = await client.post("/v1/suppressions", json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert pointer in [e["pointer"] for e in response.json()["errors"]]


async def test_list_filters_and_pages(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for index, reason in enumerate(["manual", "hard_bounce", "complaint", "hard_bounce"]):
        await suppress(client, tenant, f"u{index}@example.com", reason=reason)
    await suppress(client, tenant, "+14155550123", channel="sms", reason="complaint")

    def reasons(response: httpx.Response) -> list[str]:
        return [entry["reason"] for entry in response.json()["data"]]

    everything = await client.get("/v1/suppressions", headers=tenant.headers)
    assert reasons(everything) == ["complaint", "hard_bounce", "complaint", "hard_bounce", "manual"]
    bounces = await client.get(
        "/v1/suppressions", params={"reason": "hard_bounce"}, headers=tenant.headers
    )
    assert reasons(bounces) == ["hard_bounce", "hard_bounce"]
    sms = await client.get("/v1/suppressions", params={"channel": "sms"}, headers=tenant.headers)
    assert [e["channel"] for e in sms.json()["data"]] == ["sms"]
    first = await client.get("/v1/suppressions", params={"limit": 2}, headers=tenant.headers)
    second = await client.get(
        "/v1/suppressions",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=tenant.headers,
    )
    assert reasons(second) == ["complaint", "hard_bounce"]
    bad = await client.get("/v1/suppressions", params={"reason": "bored"}, headers=tenant.headers)
    assert bad.status_code == 422


async def test_get_and_delete(client: httpx.AsyncClient, tenant: Tenant) -> None:
    entry = (await suppress(client, tenant, "ana@example.com")).json()
    got = await client.get(f"/v1/suppressions/{entry['id']}", headers=tenant.headers)
    assert got.json() == entry
    deleted = await client.delete(f"/v1/suppressions/{entry['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/v1/suppressions/{entry['id']}", headers=tenant.headers)
    assert gone.status_code == 404
    again = await client.delete(f"/v1/suppressions/{entry['id']}", headers=tenant.headers)
    assert again.status_code == 404
    # deleting makes the address suppressible afresh
    assert (await suppress(client, tenant, "ana@example.com")).status_code == 201


async def test_erased_entries_cannot_be_deleted(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with transaction(session_factory) as session:
        entry = Suppression(
            workspace_id=tenant.workspace_id,
            channel="email",
            address_hash=address_hash("email", "gone@example.com"),
            reason="erased",
            source="erasure",
        )
        session.add(entry)
        await session.flush()
        entry_id = entry.id
    response = await client.delete(f"/v1/suppressions/{entry_id}", headers=tenant.headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"/v1/suppressions/{entry_id}", headers=tenant.headers)).json()[
        "reason"
    ] == "erased"


async def test_check_thousand_addresses(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    suppressed = {f"user{n}@example.com" for n in range(0, 1000, 7)}
    async with transaction(session_factory) as session:
        session.add_all(
            Suppression(
                workspace_id=tenant.workspace_id,
                channel="email",
                address_hash=address_hash("email", address),
                reason="hard_bounce",
            )
            for address in suppressed
        )
    addresses = [f"USER{n}@example.com" for n in range(1000)]
    response = await client.post(
        "/v1/suppressions/check",
        json={"channel": "email", "addresses": addresses},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["suppressed_count"] == len(suppressed)
    assert [item["address"] for item in body["results"]] == addresses
    flagged = {item["address"].lower() for item in body["results"] if item["suppressed"]}
    assert flagged == suppressed
    assert {item["reason"] for item in body["results"] if item["suppressed"]} == {"hard_bounce"}
    # the same address on the other channel is not suppressed
    sms = await client.post(
        "/v1/suppressions/check",
        json={"channel": "sms", "addresses": ["+14155550123"]},
        headers=tenant.headers,
    )
    assert sms.json()["results"][0] == {
        "address": "+14155550123",
        "suppressed": False,
        "reason": None,
        "suppression_id": None,
    }

    async with transaction(session_factory) as session:
        found = await suppressed_addresses(session, tenant.workspace_id, "email", addresses)
        assert {a.lower() for a in found} == suppressed
        assert await is_suppressed(session, tenant.workspace_id, "email", "user7@example.com")
        assert not await is_suppressed(session, tenant.workspace_id, "email", "user8@example.com")
        assert not await is_suppressed(session, tenant.workspace_id, "sms", "garbage")


async def test_check_limits_and_malformed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    too_many = await client.post(
        "/v1/suppressions/check",
        json={"channel": "email", "addresses": [f"u{n}@example.com" for n in range(1001)]},
        headers=tenant.headers,
    )
    assert too_many.status_code == 422
    empty = await client.post(
        "/v1/suppressions/check", json={"channel": "email", "addresses": []}, headers=tenant.headers
    )
    assert empty.status_code == 422
    malformed = await client.post(
        "/v1/suppressions/check",
        json={"channel": "sms", "addresses": ["+14155550123", "call me"]},
        headers=tenant.headers,
    )
    assert malformed.status_code == 422
    assert [e["pointer"] for e in malformed.json()["errors"]] == ["/addresses/1"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_other_workspace_suppression_is_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, method: str
) -> None:
    theirs = (await suppress(client, other_tenant, "victim@globex.example")).json()
    response = await client.request(
        method, f"/v1/suppressions/{theirs['id']}", headers=tenant.headers
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    still = await client.get(f"/v1/suppressions/{theirs['id']}", headers=other_tenant.headers)
    assert still.status_code == 200


async def test_lists_and_checks_are_per_workspace(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await suppress(client, other_tenant, "victim@globex.example")
    assert (await client.get("/v1/suppressions", headers=tenant.headers)).json()["data"] == []
    check = await client.post(
        "/v1/suppressions/check",
        json={"channel": "email", "addresses": ["victim@globex.example"]},
        headers=tenant.headers,
    )
    assert check.json()["suppressed_count"] == 0
    # and the same address can be suppressed independently here
    assert (await suppress(client, tenant, "victim@globex.example")).status_code == 201


async def test_unknown_id_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(f"/v1/suppressions/{uuid.uuid4()}", headers=tenant.headers)
    assert response.status_code == 404


async def test_concurrent_creates_yield_one_entry(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    spellings = ["ana@example.com", "ANA@example.com", " Ana@Example.com"] * 4
    responses = await asyncio.gather(
        *(suppress(client, tenant, address, reason="complaint") for address in spellings)
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * (len(spellings) - 1) + [201]
    assert len({response.json()["id"] for response in responses}) == 1
    async with transaction(session_factory) as session:
        assert await session.scalar(select(func.count()).select_from(Suppression)) == 1
