"""The principal cache: a key seen recently costs no SQL, and every way of taking a credential
away still answers 401 on the next request, in every API process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin import revoke_key
from app.config import Settings
from app.core.auth import EPOCH_KEY, TTL
from app.core.clock import clock
from app.core.state import AppState
from app.main import create_app
from tests.fixtures.clients import client_for
from tests.fixtures.tenants import Tenant, make_key


@contextmanager
def statements(state: AppState) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(state.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(state.engine.sync_engine, "before_cursor_execute", record)


def key_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if "api_keys" in s]


@pytest.fixture
async def second_process(settings: Settings) -> AsyncIterator[FastAPI]:
    """Another API process: same database and Redis, its own cache."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def read_key(client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, dict[str, str]]:
    created = await client.post(
        "/v1/api-keys", json={"name": "reader", "scopes": ["read"]}, headers=tenant.headers
    )
    body = created.json()
    return body["id"], {"Authorization": f"Bearer {body['key']}"}


async def test_a_recently_seen_key_costs_no_sql(
    client: httpx.AsyncClient, state: AppState, tenant: Tenant
) -> None:
    assert (await client.get("/v1/workspace", headers=tenant.headers)).status_code == 200
    with statements(state) as seen:
        assert (await client.get("/v1/workspace", headers=tenant.headers)).status_code == 200
    assert key_reads(seen) == []
    assert any("workspaces" in s for s in seen)  # the endpoint's own query still runs


async def test_revocation_reaches_every_process_on_the_next_request(
    client: httpx.AsyncClient, second_process: FastAPI, tenant: Tenant
) -> None:
    key_id, headers = await read_key(client, tenant)
    async with client_for(second_process) as other:
        # Both processes have the key cached.
        for http in (client, other, client, other):
            assert (await http.get("/v1/workspace", headers=headers)).status_code == 200
        revoked = await client.delete(f"/v1/api-keys/{key_id}", headers=tenant.headers)
        assert revoked.status_code == 200
        assert (await other.get("/v1/workspace", headers=headers)).status_code == 401
        assert (await client.get("/v1/workspace", headers=headers)).status_code == 401
        # Other cached keys re-read once and keep working.
        assert (await other.get("/v1/workspace", headers=tenant.headers)).status_code == 200


async def test_removing_a_member_revokes_their_cached_keys(
    client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    member = await client.post(
        "/v1/members",
        json={"email": "ana@acme.example", "name": "Ana", "role": "editor"},
        headers=tenant.headers,
    )
    assert member.status_code == 201, member.text
    token = await make_key(session_factory, tenant, ["read"], member_id=member.json()["id"])
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 200
    removed = await client.delete(f"/v1/members/{member.json()['id']}", headers=tenant.headers)
    assert removed.status_code == 204
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 401


async def test_cli_revocation_reaches_running_processes(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant
) -> None:
    key_id, headers = await read_key(client, tenant)
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 200
    pushed = await revoke_key(
        settings.require_database_url(),
        settings.require_redis_url(),
        tenant.workspace_id,
        key_id,  # type: ignore[arg-type]
    )
    assert pushed is True
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 401


async def test_a_failed_request_never_changes_the_epoch(
    client: httpx.AsyncClient, redis: Redis, tenant: Tenant
) -> None:
    key_id, _ = await read_key(client, tenant)
    before = await redis.get(EPOCH_KEY)
    # A revoke of an unknown key rolls back: no epoch change, caches stay warm.
    missing = await client.delete(
        "/v1/api-keys/0193a5f2-6c1d-7b3e-9f00-000000000000", headers=tenant.headers
    )
    assert missing.status_code == 404
    assert await redis.get(EPOCH_KEY) == before
    await client.delete(f"/v1/api-keys/{key_id}", headers=tenant.headers)
    assert await redis.get(EPOCH_KEY) != before


async def test_a_redis_flush_cannot_resurrect_a_revoked_key(
    client: httpx.AsyncClient, redis: Redis, tenant: Tenant
) -> None:
    key_id, headers = await read_key(client, tenant)
    await client.delete(f"/v1/api-keys/{key_id}", headers=tenant.headers)
    assert (await client.get("/v1/workspace", headers=tenant.headers)).status_code == 200
    await redis.flushall()
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 401
    assert (await client.get("/v1/workspace", headers=tenant.headers)).status_code == 200


async def test_changes_made_outside_herald_apply_within_the_ttl(
    client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    key_id, headers = await read_key(client, tenant)
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 200
    async with session_factory() as session:
        await session.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE id = :id"), {"id": key_id}
        )
        await session.commit()
    # Documented: a revocation by hand (no epoch change) is served from the cache ...
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 200
    clock.advance(TTL)
    # ... until the entry expires.
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 401


async def test_last_used_at_keeps_its_resolution(client: httpx.AsyncClient, tenant: Tenant) -> None:
    key_id, headers = await read_key(client, tenant)
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 200
    first = (await client.get(f"/v1/api-keys/{key_id}", headers=tenant.headers)).json()
    assert first["last_used_at"] is not None
    clock.advance(TTL + timedelta(seconds=1))
    assert (await client.get("/v1/workspace", headers=headers)).status_code == 200
    later = (await client.get(f"/v1/api-keys/{key_id}", headers=tenant.headers)).json()
    assert later["last_used_at"] > first["last_used_at"]
