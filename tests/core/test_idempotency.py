from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import clock
from app.core.db import transaction
from app.core.idempotency import IdempotencyRecord, IdempotencyRepository, purge_expired
from app.workspaces.models import Member
from tests.fixtures.tenants import Tenant


async def count_members(factory: async_sessionmaker[AsyncSession], email: str) -> int:
    async with factory() as session:
        return int(await session.scalar(select(func.count()).where(Member.email == email)) or 0)


async def test_replay_returns_the_stored_response(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "create-dana-1"}
    body = {"email": "dana@acme.example", "name": "Dana"}
    first = await client.post("/v1/members", json=body, headers=headers)
    second = await client.post("/v1/members", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.headers["content-type"] == "application/json"
    assert await count_members(session_factory, "dana@acme.example") == 1


async def test_same_key_other_body_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "k1"}
    await client.post("/v1/members", json={"email": "a@acme.example", "name": "A"}, headers=headers)
    other = await client.post(
        "/v1/members", json={"email": "b@acme.example", "name": "B"}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["type"] == "https://herald.dev/problems/idempotency-key-reused"


async def test_errors_are_replayed_too(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "bad-body"}
    body = {"email": "nope", "name": "A"}
    first = await client.post("/v1/members", json=body, headers=headers)
    second = await client.post("/v1/members", json=body, headers=headers)
    assert first.status_code == second.status_code == 422
    assert second.headers["content-type"] == "application/problem+json"
    assert second.headers["idempotent-replayed"] == "true"


async def test_twenty_concurrent_identical_requests_create_one_row(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "burst"}
    body = {"email": "burst@acme.example", "name": "Burst"}
    responses = await asyncio.gather(
        *(client.post("/v1/members", json=body, headers=headers) for _ in range(20))
    )
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {201, 409}, statuses
    assert statuses.count(201) >= 1
    created = {response.json()["id"] for response in responses if response.status_code == 201}
    assert len(created) == 1
    in_flight = [r for r in responses if r.status_code == 409]
    assert all(r.json()["type"].endswith("idempotency-key-in-flight") for r in in_flight)
    assert await count_members(session_factory, "burst@acme.example") == 1


async def test_keys_are_per_workspace(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    body = {"email": "shared@example.com", "name": "Shared"}
    mine = await client.post(
        "/v1/members", json=body, headers={**tenant.headers, "Idempotency-Key": "same"}
    )
    theirs = await client.post(
        "/v1/members", json=body, headers={**other_tenant.headers, "Idempotency-Key": "same"}
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


async def test_keys_expire_after_24_hours(client: httpx.AsyncClient, tenant: Tenant) -> None:
    clock.freeze(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    headers = {**tenant.headers, "Idempotency-Key": "daily"}
    await client.post(
        "/v1/members", json={"email": "d1@acme.example", "name": "D"}, headers=headers
    )
    clock.advance(timedelta(hours=23))
    reused = await client.post(
        "/v1/members", json={"email": "d2@acme.example", "name": "D"}, headers=headers
    )
    assert reused.status_code == 422
    clock.advance(timedelta(hours=2))
    fresh = await client.post(
        "/v1/members", json={"email": "d2@acme.example", "name": "D"}, headers=headers
    )
    assert fresh.status_code == 201
    assert "idempotent-replayed" not in fresh.headers


async def test_malformed_key_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/members",
        json={"email": "x@acme.example", "name": "X"},
        headers={**tenant.headers, "Idempotency-Key": "x" * 300},
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("bad-idempotency-key")


async def test_unauthenticated_request_with_key_is_plain_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/members", json={}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 401


async def test_stale_in_flight_claim_can_be_retaken(
    session_factory: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    now = clock.freeze(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    ttl, stale = timedelta(hours=24), timedelta(seconds=60)
    async with transaction(session_factory) as session:
        store = IdempotencyRepository(session, tenant.workspace_id)
        assert await store.claim("crash", "f1", now, ttl, stale) is True
        assert await store.claim("crash", "f1", now + timedelta(seconds=30), ttl, stale) is False
        assert await store.claim("crash", "f1", now + timedelta(seconds=61), ttl, stale) is True


async def test_purge_removes_only_expired(
    session_factory: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    async with transaction(session_factory) as session:
        store = IdempotencyRepository(session, tenant.workspace_id)
        await store.claim(
            "old", "f", now - timedelta(hours=30), timedelta(hours=24), timedelta(seconds=60)
        )
        await store.claim("new", "f", now, timedelta(hours=24), timedelta(seconds=60))
    async with transaction(session_factory) as session:
        assert await purge_expired(session, now) == 1
    async with transaction(session_factory) as session:
        store = IdempotencyRepository(session, tenant.workspace_id)
        assert await store.get("old") is None
        assert await store.get("new") is not None


async def test_large_upload_with_key_is_spooled_and_replayed(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Bodies over the in-memory spool size (1 MiB) still fingerprint and replay exactly."""
    rows = "".join(f"user{index}@acme.example,crm-{index}\n" for index in range(60_000))
    body = ("email,external_id\n" + rows).encode()
    assert len(body) > 1_048_576
    headers = {**tenant.headers, "Content-Type": "text/csv", "Idempotency-Key": "big-import"}
    first = await client.post("/v1/contacts/imports", content=body, headers=headers)
    second = await client.post("/v1/contacts/imports", content=body, headers=headers)
    assert first.status_code == second.status_code == 202, first.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["size_bytes"] == len(body)
    assert second.headers["idempotent-replayed"] == "true"
    changed = await client.post(
        "/v1/contacts/imports", content=body + b"x@y.example,z\n", headers=headers
    )
    assert changed.status_code == 422
    listed = await client.get("/v1/contacts/imports", headers=tenant.headers)
    assert len(listed.json()["data"]) == 1


async def stored_reply(factory: async_sessionmaker[AsyncSession], key: str) -> bytes:
    async with factory() as session:
        stored = await session.scalar(
            select(IdempotencyRecord.response_body).where(IdempotencyRecord.key == key)
        )
    assert stored is not None
    return stored


async def test_a_secret_shown_once_is_sealed_in_the_replay_store(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A new API key and a webhook signing secret: `Cache-Control: no-store`, the stored
    replay holds no plaintext secret, and a replay still answers the very same secret."""
    created: list[tuple[str, str]] = []
    for path, body, field in [
        ("/v1/api-keys", {"name": "CRM", "scopes": ["contacts:read"]}, "key"),
        ("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hook"}, "secret"),
    ]:
        headers = {**tenant.headers, "Idempotency-Key": f"secret-{field}"}
        first = await client.post(path, json=body, headers=headers)
        replay = await client.post(path, json=body, headers=headers)
        assert first.status_code == replay.status_code == 201, first.text
        assert first.headers["cache-control"] == "no-store"
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
        secret = first.json()[field]
        stored = await stored_reply(session_factory, f"secret-{field}")
        assert secret.encode() not in stored
        assert stored.startswith(b"herald-sealed:v1:")
        created.append((path, secret))
    assert len(created) == 2


async def test_ordinary_replies_stay_searchable_for_erasure(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "plain-member"}
    response = await client.post(
        "/v1/members", json={"email": "erin@acme.example", "name": "Erin"}, headers=headers
    )
    assert response.status_code == 201
    assert "cache-control" not in response.headers
    assert b"erin@acme.example" in await stored_reply(session_factory, "plain-member")
