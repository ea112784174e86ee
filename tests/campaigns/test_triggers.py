"""Triggered campaigns: enrollment on segment entry and on matching events while running,
the re-entry policies, nothing before the launch, while paused it catches up on resume,
nothing after the end time. Real API, Postgres and arq worker; the clock is moved."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.config import Settings
from app.core.clock import clock
from app.core.state import AppState
from tests.fixtures import factories
from tests.fixtures import launch as ls
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


async def _segment_campaign(
    client: httpx.AsyncClient,
    tenant: Tenant,
    factory: Factory,
    reentry: dict[str, Any],
    **fields: Any,
) -> tuple[uuid.UUID, str]:
    trigger_segment = await factories.static_segment(client, tenant, [], name="Trigger")
    sequence_id = await ls.sequence(client, tenant)
    campaign_id = await ls.campaign(
        factory,
        tenant,
        sequence_id,
        [],
        type="triggered",
        trigger={"kind": "segment_entry", "segment_id": trigger_segment},
        reentry=reentry,
        **fields,
    )
    await ls.call(factory, campaign_id, "schedule")
    return campaign_id, trigger_segment


async def _reenter(
    client: httpx.AsyncClient, tenant: Tenant, segment_id: str, contact_id: str
) -> None:
    await factories.remove_members(client, tenant, segment_id, [contact_id])
    clock.advance(timedelta(seconds=1))
    await factories.add_members(client, tenant, segment_id, [contact_id])


async def test_segment_entry_enrolls_with_each_reentry_policy(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    state: AppState,
    settings: Settings,
) -> None:
    clock.freeze(NOW)
    ana = await factories.contact(client, tenant, email="ana@example.com")
    early = await factories.contact(client, tenant, email="early@example.com")
    campaigns = {
        policy: await _segment_campaign(client, tenant, session_factory, reentry)
        for policy, reentry in (
            ("once", {"policy": "once"}),
            ("once_per", {"policy": "once_per", "days": 7}),
            ("always", {"policy": "always"}),
        )
    }
    # An entry before the launch does not count.
    for _, segment in campaigns.values():
        await factories.add_members(client, tenant, segment, [early])
    clock.advance(timedelta(seconds=1))
    await ls.campaigns_scan(state, settings)  # launches (status running, sweep starts)
    for campaign_id, _ in campaigns.values():
        assert (await ls.load(session_factory, campaign_id)).status == "running"

    clock.advance(timedelta(seconds=1))
    for _, segment in campaigns.values():
        await factories.add_members(client, tenant, segment, [ana])
    clock.advance(timedelta(seconds=1))
    await ls.campaigns_scan(state, settings)
    await ls.campaigns_scan(state, settings)  # re-reading the overlap enrolls nobody twice
    for campaign_id, _ in campaigns.values():
        assert await ls.enrolled_contacts(session_factory, campaign_id) == [uuid.UUID(ana)]
        assert (await ls.load(session_factory, campaign_id)).enrolled_count == 1
    await harness.scan(state, settings)  # the one-step sequence finishes

    # Re-entry two days later: only `always` enrolls again.
    clock.advance(timedelta(days=2))
    for _, segment in campaigns.values():
        await _reenter(client, tenant, segment, ana)
    clock.advance(timedelta(seconds=1))
    await ls.campaigns_scan(state, settings)
    counts = {p: len(await ls.enrollments(session_factory, c)) for p, (c, _) in campaigns.items()}
    assert counts == {"once": 1, "once_per": 1, "always": 2}
    await harness.scan(state, settings)

    # Eight days after the first enrollment: `once_per` 7 days enrolls again, `once` never.
    clock.advance(timedelta(days=6))
    for _, segment in campaigns.values():
        await _reenter(client, tenant, segment, ana)
    clock.advance(timedelta(seconds=1))
    await ls.campaigns_scan(state, settings)
    counts = {p: len(await ls.enrollments(session_factory, c)) for p, (c, _) in campaigns.items()}
    assert counts == {"once": 1, "once_per": 2, "always": 3}


async def test_event_trigger_with_filter_pause_catch_up_and_end_time(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    state: AppState,
    settings: Settings,
) -> None:
    clock.freeze(NOW)
    ana = await factories.contact(client, tenant, email="ana@example.com")
    bob = await factories.contact(client, tenant, email="bob@example.com")
    cy = await factories.contact(client, tenant, email="cy@example.com")
    dee = await factories.contact(client, tenant, email="dee@example.com")
    sequence_id = await ls.sequence(client, tenant, wait="P30D")
    end = NOW + timedelta(days=1)
    campaign_id = await ls.campaign(
        session_factory,
        tenant,
        sequence_id,
        [],
        type="triggered",
        trigger={
            "kind": "event",
            "event_type": "purchase",
            "where": [{"property": "plan", "op": "eq", "value": "pro"}],
        },
        reentry={"policy": "always"},
        end_at=end,
    )
    await ls.call(session_factory, campaign_id, "schedule")
    await ls.campaigns_scan(state, settings)
    clock.advance(timedelta(seconds=5))
    await factories.event(client, tenant, ana, "purchase", plan="pro")
    await factories.event(client, tenant, bob, "purchase", plan="free")  # filtered out
    clock.advance(timedelta(seconds=1))
    await ls.campaigns_scan(state, settings)
    assert await ls.enrolled_contacts(session_factory, campaign_id) == [uuid.UUID(ana)]

    # While paused nobody is enrolled; the entries are caught up on resume.
    await ls.call(session_factory, campaign_id, "pause")
    clock.advance(timedelta(seconds=5))
    await factories.event(client, tenant, cy, "purchase", plan="pro")
    clock.advance(timedelta(seconds=1))
    await ls.campaigns_scan(state, settings)
    assert await ls.enrolled_contacts(session_factory, campaign_id) == [uuid.UUID(ana)]
    await ls.call(session_factory, campaign_id, "resume", "send_now")
    await ls.campaigns_scan(state, settings)
    assert set(await ls.enrolled_contacts(session_factory, campaign_id)) == {
        uuid.UUID(ana),
        uuid.UUID(cy),
    }

    # After the end time: no new enrollments; the campaign waits for its enrollments.
    clock.advance(timedelta(days=1))
    await ls.campaigns_scan(state, settings)
    clock.advance(timedelta(seconds=5))
    await factories.event(client, tenant, dee, "purchase", plan="pro")
    clock.advance(timedelta(seconds=1))
    await ls.campaigns_scan(state, settings)
    assert len(await ls.enrollments(session_factory, campaign_id)) == 2
    row = await ls.load(session_factory, campaign_id)
    assert (row.status, row.enrolled_count) == ("running", 2)
    pending = [a.kind for a in await ls.actions(session_factory, campaign_id) if a.done_at is None]
    assert pending == ["complete"]
