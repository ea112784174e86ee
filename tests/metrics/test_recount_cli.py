"""`herald metrics recount`: agreement, differences (exit 1), --fix."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update
from typer.testing import CliRunner, Result

from app.cli import cli
from app.core.db import transaction
from app.metrics.models import MetricRollup
from tests.fixtures.factories import Factory
from tests.fixtures.metrics import World
from tests.fixtures.tenants import Tenant
from tests.metrics.scenario import build_scenario

runner = CliRunner()


async def invoke(*args: str) -> Result:
    # The command runs its own event loop: give it a thread.
    return await asyncio.to_thread(runner.invoke, cli, ["metrics", "recount", *args])


async def test_recount_command(
    session_factory: Factory, tenant: Tenant, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    world = await World(session_factory, tenant).setup(segments=2)
    await build_scenario(world)
    await world.fold()
    scope = ["--workspace", str(world.workspace_id), "--campaign", str(world.campaign_id)]

    agreed = await invoke(*scope)
    assert agreed.exit_code == 0, agreed.output
    assert "metrics agree" in agreed.output

    async with transaction(session_factory) as session:
        await session.execute(
            update(MetricRollup).where(MetricRollup.opens > 0).values(opens=MetricRollup.opens + 1)
        )
    found = await invoke("--workspace", str(world.workspace_id))
    assert found.exit_code == 1
    assert "opens: stored" in found.output

    fixed = await invoke(*scope, "--fix")
    assert fixed.exit_code == 1
    assert "(fixed)" in fixed.output
    assert (await invoke()).exit_code == 0
    totals = (await world.stats()).totals
    assert totals.opened.total == 4


async def test_campaign_needs_workspace(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = await invoke("--campaign", "0193a5f2-6c1d-7b3e-9f00-0000000000c1")
    assert result.exit_code == 2
