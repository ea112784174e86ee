"""Client `event_id` dedup: a resend returns the original, never a second row."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import Event
from tests.events.helpers import batch, contacts_of
from tests.fixtures.tenants import Tenant


async def stored(factory: async_sessionmaker[AsyncSession], client_event_id: str) -> int:
    async with factory() as session:
        result = await session.execute(
            select(func.count()).select_from(Event).where(Event.client_event_id == client_event_id)
        )
        return int(result.scalar_one())


async def test_resend_returns_the_original(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    body = {"external_id": "c", "type": "purchase", "event_id": "order-1"}
    first = await client.post("/v1/events", json=body, headers=tenant.headers)
    assert first.status_code == 201
    # a resend, even with other content, answers 200 with the original
    again = await client.post("/v1/events", json={**body, "type": "refund"}, headers=tenant.headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    answer = await batch(client, tenant, [body, body])
    assert [r["status"] for r in answer["results"]] == ["duplicate", "duplicate"]
    assert {r["id"] for r in answer["results"]} == {first.json()["id"]}
    assert answer["duplicates"] == 2
    assert await stored(session_factory, "order-1") == 1


async def test_repeats_inside_one_batch(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "c", "type": "x", "event_id": "k"},
            {"external_id": "c", "type": "x", "event_id": "k"},
            {"external_id": "c", "type": "x"},
            {"external_id": "c", "type": "x"},
        ],
    )
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["accepted", "duplicate", "accepted", "accepted"]
    assert answer["results"][1]["id"] == answer["results"][0]["id"]
    # events without an event_id are never deduplicated
    assert answer["results"][2]["id"] != answer["results"][3]["id"]
    assert await stored(session_factory, "k") == 1


async def test_a_rejected_first_item_does_not_shadow_a_good_repeat(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    answer = await batch(
        client,
        tenant,
        [
            {"external_id": "c", "type": "bad type", "event_id": "k"},
            {"external_id": "c", "type": "x", "event_id": "k"},
        ],
    )
    assert [r["status"] for r in answer["results"]] == ["rejected", "accepted"]


async def test_dedup_is_per_workspace(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    body = {"external_id": "c", "type": "x", "event_id": "shared"}
    mine = await client.post("/v1/events", json=body, headers=tenant.headers)
    theirs = await client.post("/v1/events", json=body, headers=other_tenant.headers)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert await stored(session_factory, "shared") == 2


async def test_concurrent_resends_store_one_row(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    body = {"email": "race@example.com", "type": "purchase", "event_id": "race-1"}
    responses = await asyncio.gather(
        *(client.post("/v1/events", json=body, headers=tenant.headers) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await stored(session_factory, "race-1") == 1
    # the unknown contact was created once, too
    assert len(await contacts_of(session_factory, tenant)) == 1


async def test_concurrent_overlapping_batches(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """20 batches sharing event ids and (new) contacts in different orders: no deadlock,
    no second row, every item answered with the one stored event."""
    events = [{"external_id": f"c-{i % 7}", "type": "x", "event_id": f"e-{i}"} for i in range(50)]
    bodies = [events[i:] + events[:i] for i in range(0, 100, 5)]
    responses = await asyncio.gather(
        *(
            client.post("/v1/events/batch", json={"events": b}, headers=tenant.headers)
            for b in bodies
        )
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    ids: dict[int, set[str]] = {}
    accepted = 0
    for response in responses:
        answer = response.json()
        accepted += answer["accepted"]
        assert answer["rejected"] == 0
        for result in answer["results"]:
            ids.setdefault(result["index"], set())
    by_event: dict[str, set[str]] = {}
    for body, response in zip(bodies, responses, strict=True):
        for item, result in zip(body, response.json()["results"], strict=True):
            by_event.setdefault(item["event_id"], set()).add(result["id"])
    assert all(len(found) == 1 for found in by_event.values())
    assert accepted == 50
    async with session_factory() as session:
        count = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
    assert count == 50
    assert len(await contacts_of(session_factory, tenant)) == 7
