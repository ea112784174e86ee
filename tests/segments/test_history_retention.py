"""The daily purge of segment history: membership journal rows and count snapshots older than
`segments.history_retention_days` go, younger ones stay, in bounded batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from app.config import Settings
from app.core.clock import clock
from app.core.db import transaction
from app.core.jobs import enqueue
from app.core.state import AppState
from app.segments import membership
from app.segments.models import SegmentCountSnapshot, SegmentMembershipChange
from tests.fixtures.factories import Factory, contact, static_segment
from tests.fixtures.tenants import Tenant
from tests.fixtures.worker import run_jobs, tick

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def history(factory: Factory) -> tuple[list[tuple[str, datetime]], list[datetime]]:
    """Every journal row (change, time) and every snapshot time, oldest first."""
    journal = SegmentMembershipChange
    async with factory() as session:
        changes = await session.execute(
            select(journal.change, journal.occurred_at).order_by(journal.occurred_at, journal.id)
        )
        snapshots = await session.scalars(
            select(SegmentCountSnapshot.taken_at).order_by(SegmentCountSnapshot.taken_at)
        )
        return [(c, at) for c, at in changes.all()], list(snapshots.all())


async def test_daily_purge_drops_old_history_and_keeps_young(
    client: httpx.AsyncClient, state: AppState, settings: Settings, tenant: Tenant
) -> None:
    clock.freeze(NOW)
    ana = await contact(client, tenant, email="ana@acme.example")
    bob = await contact(client, tenant, email="bob@acme.example")
    segment = await static_segment(client, tenant, [ana, bob])
    await tick(state, settings, "first")
    later = NOW + timedelta(days=200)
    clock.freeze(later)
    removed = await client.post(
        f"/v1/segments/{segment}/members/remove",
        json={"contact_ids": [bob]},
        headers=tenant.headers,
    )
    assert removed.status_code == 200, removed.text
    await tick(state, settings, "later")
    assert await history(state.session_factory) == (
        [("entered", NOW), ("entered", NOW), ("left", later)],
        [NOW, later],
    )

    clock.freeze(NOW + timedelta(days=settings.segments.history_retention_days, seconds=1))
    async with transaction(state.session_factory, state.queue) as session:
        enqueue(session, "segments_purge_history", job_key=("test",))
    await run_jobs(settings)

    assert await history(state.session_factory) == ([("left", later)], [later])
    listed = await client.get(f"/v1/segments/{segment}/changes", headers=tenant.headers)
    assert [(c["change"], c["contact_id"]) for c in listed.json()["data"]] == [("left", bob)]


async def test_purge_batches_are_bounded(
    client: httpx.AsyncClient, state: AppState, settings: Settings, tenant: Tenant
) -> None:
    """Each call deletes at most `limit` rows of each kind, so the job's transactions stay
    short however much history is due; the job repeats until a batch comes back short."""
    clock.freeze(NOW)
    people = [await contact(client, tenant, email=f"p{i}@acme.example") for i in range(3)]
    await static_segment(client, tenant, people)
    await tick(state, settings, "first")
    cutoff = NOW + timedelta(seconds=1)
    deleted = []
    for _ in range(4):
        async with transaction(state.session_factory) as session:
            deleted.append(await membership.purge_history(session, cutoff, limit=2))
    assert deleted == [(2, 1), (1, 0), (0, 0), (0, 0)]
