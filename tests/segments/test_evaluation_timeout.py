"""Rule evaluation on the request path is bounded (HERALD_SEGMENTS__EVALUATION_TIMEOUT_SECONDS).

A slow evaluation is provoked deterministically: another transaction holds an ACCESS
EXCLUSIVE lock on `contacts`, so the count waits for it and PostgreSQL's statement timeout
(which also covers lock waits) cancels it. No sleep, no timing assertion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.core.db import StatementTimeout, statement_timeout
from tests.fixtures.factories import Factory
from tests.fixtures.rows import contact_row, insert_rows
from tests.fixtures.tenants import Tenant

PRO = {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}}


@asynccontextmanager
async def contacts_locked(factory: Factory) -> AsyncIterator[None]:
    async with factory() as session, session.begin():
        # If the bound ever stopped working, the request would wait for this lock while the
        # test waits for the request: the server ends this idle transaction instead, the
        # request then succeeds and the test fails rather than hangs.
        await session.execute(text("SET LOCAL idle_in_transaction_session_timeout = '20s'"))
        await session.execute(text("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE"))
        yield


@pytest.fixture
def short_timeout(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings.segments, "evaluation_timeout_seconds", 0.2)


@pytest.mark.usefixtures("short_timeout")
async def test_preview_past_the_bound_is_a_422_naming_the_rule(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await insert_rows(
        session_factory, contacts=[contact_row(tenant.workspace_id, attributes={"plan": "pro"})]
    )
    body = {"rule": PRO}
    async with contacts_locked(session_factory):
        slow = await client.post("/v1/segments/preview", json=body, headers=tenant.headers)
    assert slow.status_code == 422, slow.text
    assert slow.headers["content-type"] == "application/problem+json"
    problem = slow.json()
    assert "0.2 s" in problem["detail"]
    assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [
        ("/rule", "evaluation_timeout")
    ]

    fine = await client.post("/v1/segments/preview", json=body, headers=tenant.headers)
    assert fine.status_code == 200, fine.text
    assert fine.json()["count"] == 1


@pytest.mark.usefixtures("short_timeout")
async def test_live_count_past_the_bound_is_a_422(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await client.post(
        "/v1/segments",
        json={"name": "Pro", "kind": "dynamic", "rule": PRO},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    url = f"/v1/segments/{created.json()['id']}/count"
    async with contacts_locked(session_factory):
        slow = await client.get(url, headers=tenant.headers)
    assert slow.status_code == 422, slow.text
    assert "evaluate" in slow.json()["detail"]

    fine = await client.get(url, headers=tenant.headers)
    assert (fine.status_code, fine.json()["count"]) == (200, 0)


async def test_the_bound_is_lifted_after_the_block_and_the_transaction_survives(
    session_factory: Factory,
) -> None:
    async with session_factory() as session, session.begin():
        before = (await session.execute(text("SHOW statement_timeout"))).scalar_one()
        async with statement_timeout(session, 5):
            inside = (await session.execute(text("SHOW statement_timeout"))).scalar_one()
        after = (await session.execute(text("SHOW statement_timeout"))).scalar_one()
        assert (inside, after) == ("5s", before)

        with pytest.raises(StatementTimeout):
            async with statement_timeout(session, 0.05):
                await session.execute(text("SELECT pg_sleep(5)"))
        # The savepoint was rolled back: same transaction, usable, previous bound restored.
        assert (await session.execute(text("SHOW statement_timeout"))).scalar_one() == before
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
