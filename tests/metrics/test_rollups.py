"""Stats on constructed data with exact expected numbers (duplicates, late events, windows),
before and after the fold, against the recount; time series in a non-UTC timezone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from app.config import MetricsSettings
from app.contacts.models import Contact
from app.core.clock import clock
from app.core.db import transaction
from app.events.models import Event
from app.metrics import service
from app.metrics.models import MetricDelta, MetricPendingEvent, MetricRollup
from tests.fixtures.factories import Factory
from tests.fixtures.metrics import World
from tests.fixtures.tenants import Tenant
from tests.metrics.scenario import EXPECTED_TOTALS, T0, build_scenario, minutes


def dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json")
    return data


@pytest.fixture
async def world(session_factory: Factory, tenant: Tenant) -> World:
    return await World(session_factory, tenant).setup(segments=2)


async def test_exact_figures_before_and_after_the_fold(world: World) -> None:
    await build_scenario(world)
    before = await world.stats()
    assert dump(before.totals) == EXPECTED_TOTALS
    assert await world.recount() == []

    result = await world.fold()
    assert result.events > 0
    assert result.deltas > 0
    assert result.campaigns == {(world.workspace_id, world.campaign_id)}
    async with world.factory() as session:
        assert await session.scalar(select(func.count()).select_from(MetricDelta)) == 0
        assert await session.scalar(select(func.count()).select_from(MetricPendingEvent)) == 0
        assert (await session.scalar(select(func.count()).select_from(MetricRollup)) or 0) > 0
    after = await world.stats()
    assert dump(after.totals) == EXPECTED_TOTALS
    assert await world.recount() == []

    # A second fold with nothing new changes nothing.
    assert (await world.fold()).deltas == 0
    assert dump((await world.stats()).totals) == EXPECTED_TOTALS


async def test_breakdowns_by_variant_step_channel_and_segment(world: World) -> None:
    await build_scenario(world)
    await world.fold()
    by_variant = {(g.step_key, g.variant): g for g in (await world.stats("variant")).groups}
    assert set(by_variant) == {(None, None), ("hello", "A"), ("hello", "B")}
    a, b = by_variant["hello", "A"], by_variant["hello", "B"]
    campaign_level = by_variant[None, None]
    assert (a.sent, a.delivered, a.opened.unique, a.opened.total, a.converted) == (2, 1, 2, 4, 3)
    assert a.revenue == Decimal("170")
    assert a.rates.conversion == 1.5  # converted / sent on message rows
    assert a.rates.unsubscribe is None
    assert (b.sent, b.bounced, b.failed, b.converted) == (1, 1, 1, 0)
    assert (campaign_level.enrolled, campaign_level.sent) == (4, 0)

    by_channel = {g.channel: g for g in (await world.stats("channel")).groups}
    assert by_channel["email"].sent == 3

    by_step = {g.step_key: g for g in (await world.stats("step")).groups}
    assert by_step["hello"].clicked.total == 1

    segments = (await world.stats("segment")).groups
    assert [g.segment_id for g in segments] == world.segment_ids
    first, second = segments  # c1, c2 | c3, c4
    assert (first.enrolled, first.sent, first.converted, first.revenue) == (2, 2, 2, 150)
    assert (first.unsubscribed, first.opened.total) == (1, 3)
    assert (second.enrolled, second.sent, second.converted, second.completed) == (2, 1, 1, 1)


async def test_settling_events_are_read_live_then_frozen(world: World) -> None:
    clock.freeze(T0 + timedelta(days=10))
    data = await build_scenario(world)
    c1 = data["contacts"][0]
    slow = MetricsSettings(settle_seconds=60)
    await world.fold(slow)  # events received "now" have not settled: they stay queued
    async with world.factory() as session:
        assert (await session.scalar(select(func.count()).select_from(MetricPendingEvent)) or 0) > 0
    assert dump((await world.stats()).totals) == EXPECTED_TOTALS
    clock.advance(timedelta(seconds=61))
    await world.event(c1, "purchase", minutes(240), revenue="5")
    await world.fold(slow)
    totals = (await world.stats()).totals
    assert (totals.converted, totals.revenue) == (4, Decimal("175"))
    assert await world.recount() == []


async def test_deletions_follow_erasure(world: World) -> None:
    data = await build_scenario(world)
    await world.fold()
    c1 = data["contacts"][0]
    async with transaction(world.factory) as session:
        await session.execute(delete(Contact).where(Contact.id == c1))
    totals = (await world.stats()).totals
    assert (totals.enrolled, totals.sent, totals.converted) == (3, 2, 1)
    assert (totals.opened.total, totals.revenue) == (1, Decimal("20"))
    await world.fold()
    assert await world.recount() == []


async def test_erasure_scrubbing_properties_keeps_counts(world: World) -> None:
    data = await build_scenario(world)
    await world.fold()
    async with transaction(world.factory) as session:
        await session.execute(
            update(Event).where(Event.contact_id == data["contacts"][0]).values(properties={})
        )
    assert dump((await world.stats()).totals) == EXPECTED_TOTALS
    assert await world.recount() == []


async def test_recount_finds_and_fixes_tampering(world: World) -> None:
    await build_scenario(world)
    await world.fold()
    async with transaction(world.factory) as session:
        await session.execute(
            update(MetricRollup).where(MetricRollup.sent > 0).values(sent=MetricRollup.sent + 5)
        )
    differences = await world.recount()
    assert differences
    assert {d.metric for d in differences} == {"sent"}
    assert [d.stored - d.recounted for d in differences] == [5, 5]  # variants A and B
    assert await world.recount(fix=True)
    assert await world.recount() == []
    assert dump((await world.stats()).totals) == EXPECTED_TOTALS


async def test_day_buckets_in_the_campaign_timezone(
    session_factory: Factory, tenant: Tenant
) -> None:
    world = await World(session_factory, tenant, timezone="America/New_York").setup()
    contact = await world.contact()
    enrollment = await world.enroll(contact, datetime(2030, 1, 1, 3, tzinfo=UTC))
    first = await world.message(enrollment, contact, datetime(2030, 1, 1, 3, tzinfo=UTC))
    second = await world.message(
        enrollment, contact, datetime(2030, 1, 1, 6, tzinfo=UTC), step_key="again"
    )
    # 03:00Z is Dec 31 22:00 in New York; 06:00Z is Jan 1 01:00.
    await world.set_message(first, status="sent", sent_at=datetime(2030, 1, 1, 3, tzinfo=UTC))
    await world.set_message(second, status="sent", sent_at=datetime(2030, 1, 1, 6, tzinfo=UTC))
    async with world.factory() as session:
        series = await service.campaign_timeseries(
            session,
            world.workspace_id,
            world.campaign_id,
            MetricsSettings(),
            bucket="day",
            start=datetime(2029, 12, 30, 5, tzinfo=UTC),
            end=datetime(2030, 1, 2, 5, tzinfo=UTC),
        )
        hourly = await service.campaign_timeseries(
            session,
            world.workspace_id,
            world.campaign_id,
            MetricsSettings(),
            bucket="hour",
            start=datetime(2030, 1, 1, 2, tzinfo=UTC),
            end=datetime(2030, 1, 1, 7, tzinfo=UTC),
            group_by="step",
        )
    (only,) = series.series
    assert [(p.start.isoformat(), p.figures.sent) for p in only.points] == [
        ("2029-12-30T05:00:00+00:00", 0),
        ("2029-12-31T05:00:00+00:00", 1),
        ("2030-01-01T05:00:00+00:00", 1),
    ]
    assert series.to == datetime(2030, 1, 2, 5, tzinfo=UTC)
    sent_by_step = {
        s.step_key: [p.figures.sent for p in s.points] for s in hourly.series if s.step_key
    }
    assert sent_by_step == {"hello": [0, 1, 0, 0, 0], "again": [0, 0, 0, 0, 1]}
