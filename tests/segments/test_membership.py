"""Dynamic membership kept current by real arq jobs: contact changes, time passing, static
segments referenced by dynamic ones, journal and count history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from app.config import Settings
from app.contacts.models import Contact
from app.core.clock import clock
from app.core.db import transaction
from app.core.state import AppState
from app.segments import membership
from app.segments.models import (
    Segment,
    SegmentCountSnapshot,
    SegmentDirtyContact,
    SegmentMembership,
    SegmentMembershipChange,
)
from app.segments.repository import DirtyContactQueue
from tests.fixtures.factories import Factory
from tests.fixtures.rows import contact_row, event_row, insert_rows
from tests.fixtures.tenants import Tenant
from tests.fixtures.worker import run_jobs, tick

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PRO = {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}}


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/segments", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def members(factory: Factory, segment_id: str) -> set[uuid.UUID]:
    async with factory() as session:
        rows = await session.execute(
            select(SegmentMembership.contact_id).where(
                SegmentMembership.segment_id == uuid.UUID(segment_id)
            )
        )
        return set(rows.scalars())


async def changes(factory: Factory, segment_id: str) -> list[tuple[uuid.UUID, str, datetime]]:
    async with factory() as session:
        rows = await session.execute(
            select(
                SegmentMembershipChange.contact_id,
                SegmentMembershipChange.change,
                SegmentMembershipChange.occurred_at,
            )
            .where(SegmentMembershipChange.segment_id == uuid.UUID(segment_id))
            .order_by(SegmentMembershipChange.id)
        )
        return [(r.contact_id, r.change, r.occurred_at) for r in rows]


async def segment_row(factory: Factory, segment_id: str) -> Segment:
    async with factory() as session:
        segment = await session.get(Segment, uuid.UUID(segment_id))
        assert segment is not None
        return segment


async def set_plan(factory: Factory, contact_id: uuid.UUID, plan: str) -> None:
    async with factory() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.id == contact_id).values(attributes={"plan": plan})
        )


async def note(state: AppState, tenant: Tenant, *contact_ids: uuid.UUID) -> None:
    """What contacts/events code does in its ingest transaction."""
    async with transaction(state.session_factory, state.queue) as session:
        await membership.note_contacts_changed(session, tenant.workspace_id, contact_ids)


async def seed(factory: Factory, tenant: Tenant) -> dict[str, uuid.UUID]:
    rows = [
        contact_row(tenant.workspace_id, external_id=name, attributes={"plan": plan})
        for name, plan in (("u-1", "pro"), ("u-2", "pro"), ("u-3", "free"))
    ]
    await insert_rows(factory, contacts=rows)
    return {row["external_id"]: row["id"] for row in rows}


async def test_membership_follows_contact_changes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    ids = await seed(session_factory, tenant)
    segment = await create(client, tenant, name="Pro", rule=PRO)
    await run_jobs(settings)  # the refresh enqueued by the creation

    assert await members(session_factory, segment["id"]) == {ids["u-1"], ids["u-2"]}
    row = await segment_row(session_factory, segment["id"])
    assert (row.member_count, row.refreshed_at) == (2, NOW)

    clock.advance(timedelta(minutes=5))
    await set_plan(session_factory, ids["u-1"], "free")
    await set_plan(session_factory, ids["u-3"], "pro")
    await note(state, tenant, ids["u-1"], ids["u-3"])
    queued = {
        str(job.job_id) for job in await state.redis.queued_jobs(queue_name=state.queue.queue_name)
    }
    assert queued == {f"segments_refresh_contacts:{tenant.workspace_id}"}
    await run_jobs(settings)

    assert await members(session_factory, segment["id"]) == {ids["u-2"], ids["u-3"]}
    assert (await segment_row(session_factory, segment["id"])).member_count == 2
    journal = await changes(session_factory, segment["id"])
    later = NOW + timedelta(minutes=5)
    assert sorted(journal[2:]) == sorted(
        [(ids["u-1"], "left", later), (ids["u-3"], "entered", later)]
    )
    async with session_factory() as session:
        assert (await session.execute(select(SegmentDirtyContact))).all() == []

    listed = (
        await client.get(
            f"/v1/segments/{segment['id']}/changes",
            params={"occurred_after": later.isoformat()},
            headers=tenant.headers,
        )
    ).json()
    assert {(c["contact_id"], c["change"]) for c in listed["data"]} == {
        (str(ids["u-1"]), "left"),
        (str(ids["u-3"]), "entered"),
    }


async def test_full_refresh_moves_both_ways_in_one_statement(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    """A full refresh evaluates the rule once for entrants and leavers together: one left,
    one entered, the unchanged member kept, the journal and the count exact."""
    clock.freeze(NOW)
    ids = await seed(session_factory, tenant)
    segment = await create(client, tenant, name="Pro", rule=PRO)
    await run_jobs(settings)
    await set_plan(session_factory, ids["u-1"], "free")  # not noted: only the refresh sees it
    await set_plan(session_factory, ids["u-3"], "pro")

    later = NOW + timedelta(minutes=1)
    async with transaction(state.session_factory, state.queue) as session:
        moves = await membership.refresh_segment(
            session, tenant.workspace_id, uuid.UUID(segment["id"]), later
        )
    assert moves == membership.Moves(entered=1, left=1)
    assert await members(session_factory, segment["id"]) == {ids["u-2"], ids["u-3"]}
    assert sorted((await changes(session_factory, segment["id"]))[2:]) == sorted(
        [(ids["u-1"], "left", later), (ids["u-3"], "entered", later)]
    )
    row = await segment_row(session_factory, segment["id"])
    assert (row.member_count, row.refreshed_at) == (2, later)

    async with transaction(state.session_factory, state.queue) as session:
        again = await membership.refresh_segment(
            session, tenant.workspace_id, uuid.UUID(segment["id"]), later
        )
    assert again == membership.Moves(entered=0, left=0)


async def test_bursts_coalesce_into_one_job(
    client: httpx.AsyncClient, tenant: Tenant, state: AppState, session_factory: Factory
) -> None:
    ids = await seed(session_factory, tenant)
    await create(client, tenant, name="Pro", rule=PRO)
    for contact_id in ids.values():
        await note(state, tenant, contact_id)
    queued = [
        str(job.job_id) for job in await state.redis.queued_jobs(queue_name=state.queue.queue_name)
    ]
    assert queued.count(f"segments_refresh_contacts:{tenant.workspace_id}") == 1
    async with session_factory() as session:
        dirty = (await session.execute(select(SegmentDirtyContact.contact_id))).scalars().all()
    assert set(dirty) == set(ids.values())


async def test_note_is_a_no_op_without_dynamic_segments_or_after_rollback(
    client: httpx.AsyncClient, tenant: Tenant, state: AppState, session_factory: Factory
) -> None:
    ids = await seed(session_factory, tenant)
    await note(state, tenant, ids["u-1"])
    await create(client, tenant, name="Pro", rule=PRO)
    await state.redis.flushdb()

    class Boom(Exception):
        pass

    try:
        async with transaction(state.session_factory, state.queue) as session:
            await membership.note_contacts_changed(session, tenant.workspace_id, [ids["u-2"]])
            raise Boom
    except Boom:
        pass
    assert await state.redis.queued_jobs(queue_name=state.queue.queue_name) == []
    async with session_factory() as session:
        assert (await session.execute(select(SegmentDirtyContact))).all() == []


async def test_time_relative_rules_follow_the_clock(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    ids = await seed(session_factory, tenant)
    await insert_rows(
        session_factory,
        events=[
            event_row(
                tenant.workspace_id, ids["u-1"], "email.clicked", NOW - timedelta(days=6, hours=20)
            ),
            event_row(tenant.workspace_id, ids["u-2"], "email.clicked", NOW - timedelta(days=1)),
        ],
    )
    clicked = await create(
        client, tenant, name="Clicked", rule={"event": {"type": "email.clicked", "within": "P7D"}}
    )
    plain = await create(client, tenant, name="Pro", rule=PRO)
    await run_jobs(settings)
    assert await members(session_factory, clicked["id"]) == {ids["u-1"], ids["u-2"]}

    # Six hours pass with no data change: u-1's click falls out of the window.
    clock.advance(timedelta(hours=6))
    await tick(state, settings, "t1")
    assert await members(session_factory, clicked["id"]) == {ids["u-2"]}
    left = [c for c in await changes(session_factory, clicked["id"]) if c[1] == "left"]
    assert left == [(ids["u-1"], "left", NOW + timedelta(hours=6))]
    # The rule without time windows was refreshed at creation and is not due yet.
    assert (await segment_row(session_factory, plain["id"])).refreshed_at == NOW

    # The worker is down for a week: the first tick afterwards computes from state, and the
    # rule without windows gets its daily safety refresh.
    clock.advance(timedelta(days=7))
    await tick(state, settings, "t2")
    assert await members(session_factory, clicked["id"]) == set()
    assert (await segment_row(session_factory, plain["id"])).refreshed_at == NOW + timedelta(
        days=7, hours=6
    )

    history = (
        await client.get(f"/v1/segments/{clicked['id']}/history", headers=tenant.headers)
    ).json()
    # Snapshots lag the refreshes they follow by one tick: counts 2 (t1) then 1 (t2).
    assert [s["member_count"] for s in history["data"]] == [1, 2]
    first = (
        await client.get(
            f"/v1/segments/{clicked['id']}/history", params={"limit": 1}, headers=tenant.headers
        )
    ).json()
    second = (
        await client.get(
            f"/v1/segments/{clicked['id']}/history",
            params={"limit": 1, "cursor": first["next_cursor"]},
            headers=tenant.headers,
        )
    ).json()
    assert [s["member_count"] for s in first["data"] + second["data"]] == [1, 2]
    assert second["next_cursor"] is None


async def test_snapshots_only_on_change_or_hourly(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    await create(client, tenant, name="VIPs", kind="static")
    for minutes, name in ((0, "a"), (1, "b"), (2, "c"), (62, "d")):
        clock.freeze(NOW + timedelta(minutes=minutes))
        await tick(state, settings, name)
    async with session_factory() as session:
        taken = (
            (
                await session.execute(
                    select(SegmentCountSnapshot.taken_at).order_by(SegmentCountSnapshot.taken_at)
                )
            )
            .scalars()
            .all()
        )
    assert taken == [NOW, NOW + timedelta(minutes=62)]


async def test_dynamic_segment_over_a_static_one(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    session_factory: Factory,
) -> None:
    ids = await seed(session_factory, tenant)
    vips = await create(client, tenant, name="VIPs", kind="static")
    pro_vips = await create(
        client, tenant, name="Pro VIPs", rule={"all": [PRO, {"segment": {"id": vips["id"]}}]}
    )
    await client.post(
        f"/v1/segments/{vips['id']}/members",
        json={"external_ids": ["u-1", "u-2", "u-3"]},
        headers=tenant.headers,
    )
    await run_jobs(settings)
    assert await members(session_factory, pro_vips["id"]) == {ids["u-1"], ids["u-2"]}

    await client.post(
        f"/v1/segments/{vips['id']}/members/remove",
        json={"external_ids": ["u-2"]},
        headers=tenant.headers,
    )
    await run_jobs(settings)
    assert await members(session_factory, pro_vips["id"]) == {ids["u-1"]}
    assert await members(session_factory, vips["id"]) == {ids["u-1"], ids["u-3"]}
    assert (await segment_row(session_factory, pro_vips["id"])).member_count == 1


async def test_is_member_and_members_query(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    session_factory: Factory,
) -> None:
    ids = await seed(session_factory, tenant)
    segment = await create(client, tenant, name="Pro", rule=PRO)
    await run_jobs(settings)
    segment_id = uuid.UUID(segment["id"])
    await set_plan(session_factory, ids["u-3"], "pro")  # not noted: the table lags
    async with session_factory() as session:
        assert await membership.is_member(session, tenant.workspace_id, segment_id, ids["u-1"])
        assert not await membership.is_member(session, tenant.workspace_id, segment_id, ids["u-3"])
        table = await membership.members_query(session, tenant.workspace_id, segment_id)
        live = await membership.members_query(session, tenant.workspace_id, segment_id, live=True)
        assert set((await session.execute(table)).scalars()) == {ids["u-1"], ids["u-2"]}
        assert set((await session.execute(live)).scalars()) == set(ids.values())


async def test_a_contact_noted_again_during_evaluation_stays_dirty(
    client: httpx.AsyncClient, tenant: Tenant, state: AppState, session_factory: Factory
) -> None:
    ids = await seed(session_factory, tenant)
    await create(client, tenant, name="Pro", rule=PRO)
    await note(state, tenant, ids["u-1"], ids["u-2"])
    async with session_factory() as session:
        read = await DirtyContactQueue(session, tenant.workspace_id).peek(10)
    await note(state, tenant, ids["u-1"])  # committed while the job evaluates
    async with transaction(session_factory) as session:
        await DirtyContactQueue(session, tenant.workspace_id).forget(read)
    async with session_factory() as session:
        left = (await session.execute(select(SegmentDirtyContact.contact_id))).scalars().all()
    assert left == [ids["u-1"]]


async def test_tick_recovers_dirty_contacts_after_a_lost_job(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    ids = await seed(session_factory, tenant)
    segment = await create(client, tenant, name="Pro", rule=PRO)
    await run_jobs(settings)
    await set_plan(session_factory, ids["u-3"], "pro")
    await note(state, tenant, ids["u-3"])
    await state.redis.flushdb()  # Redis lost the queued job; the dirty row is in Postgres
    await tick(state, settings, "after-flush")
    assert await members(session_factory, segment["id"]) == set(ids.values())
