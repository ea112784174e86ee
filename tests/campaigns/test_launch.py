"""Campaign launch: the audience (include - exclude - suppressed - unsubscribed - erased),
idempotent and concurrent launches, durable actions (a missed launch runs on recovery, the
end time), pause / resume / cancel with waiting enrollments. Real API, Postgres and arq
worker; the clock is moved, never waited for."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from app.config import Settings
from app.contacts.consent.addresses import lenient_hash
from app.contacts.consent.reach_repository import address_hash_sql
from app.contacts.models import Contact
from app.core.clock import clock
from app.core.db import transaction
from app.core.ids import new_id
from app.core.normalize import normalize_email, normalize_phone
from app.core.state import AppState
from tests.fixtures import factories
from tests.fixtures import launch as ls
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


async def _contacts(client: httpx.AsyncClient, tenant: Tenant, names: list[str]) -> dict[str, str]:
    return {
        name: await factories.contact(client, tenant, email=f"{name}@example.com", phone=phone)
        for name, phone in zip(names, [f"+3361234{n:04d}" for n in range(len(names))], strict=True)
    }


async def test_sql_address_hash_equals_lenient_hash(
    session_factory: Factory, tenant: Tenant
) -> None:
    """The hash computed in SQL on stored (normalised) addresses is exactly
    `lenient_hash`; the naive `::bytea` / `lower()` form is not (backslashes)."""
    emails = [
        "  Ana.O'Brien+promo@Example.COM ",
        "back\\slash@example.com",
        "ÉLODIE@exämple.fr",
        "İstanbul@example.com",
        "ǅemal@example.com",
        "emoji🙂@example.com",
    ]
    phones = ["+33 6 12-34.56 (78)", "+14155550123"]
    async with transaction(session_factory) as session:
        for n, (email, phone) in enumerate(zip(emails, phones + [None] * 4, strict=True)):
            session.add(
                Contact(
                    id=new_id(),
                    workspace_id=tenant.workspace_id,
                    external_id=f"h-{n}",
                    email=normalize_email(email),
                    phone=normalize_phone(phone) if phone else None,
                )
            )
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(
                    Contact.email,
                    Contact.phone,
                    address_hash_sql("email"),
                    address_hash_sql("sms"),
                ).where(Contact.workspace_id == tenant.workspace_id)
            )
        ).all()
    assert len(rows) == len(emails)
    for email, phone, email_hash, sms_hash in rows:
        assert email_hash == lenient_hash("email", email)
        if phone is not None:
            assert sms_hash == lenient_hash("sms", phone)
    # Why the SQL form is `convert_to`, not the naive cast: `::bytea` reads a backslash as
    # an escape, so a stored `back\slash@...` does not even hash.
    naive = text("SELECT encode(sha256(('email:' || lower(:e))::bytea), 'hex')")
    async with session_factory() as session:
        with pytest.raises(DBAPIError, match="bytea"):
            await session.execute(naive, {"e": normalize_email(emails[1])})


async def test_launch_enrolls_include_minus_exclude_suppressed_unsubscribed(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    ids = await _contacts(
        client,
        tenant,
        ["ana", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "out"],
    )
    c = {name: uuid.UUID(value) for name, value in ids.items()}
    seg_a = await factories.static_segment(
        client, tenant, [ids[n] for n in ("ana", "bob", "cy", "dee")]
    )
    seg_b = await factories.static_segment(
        client, tenant, [ids[n] for n in ("dee", "eve", "fay", "gus")]
    )
    seg_b2 = await factories.static_segment(client, tenant, [ids["hal"], ids["ivy"]])
    excluded = await factories.static_segment(client, tenant, [ids["bob"], ids["out"]])
    # Suppressed by address (written differently: the hash is of the normalised form).
    response = await client.post(
        "/v1/suppressions",
        json={"channel": "email", "address": "  CY@Example.com", "reason": "hard_bounce"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    # Unsubscribed on email (the campaign's channel) vs on sms only (not a campaign channel).
    for name, channel in (("eve", "email"), ("fay", "sms")):
        response = await client.put(
            f"/v1/contacts/{ids[name]}/consent/{channel}",
            json={"status": "unsubscribed", "source": "preference_center"},
            headers=tenant.headers,
        )
        assert response.status_code == 200, response.text
    async with transaction(session_factory) as session:  # erased (as the privacy flow leaves it)
        await session.execute(update(Contact).where(Contact.id == c["gus"]).values(erased_at=NOW))
    # Suppressed on sms only: excluded from an sms campaign, not from the email one.
    response = await client.post(
        "/v1/suppressions",
        json={"channel": "sms", "address": "+33612340008", "reason": "manual"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text

    sequence_id = await ls.sequence(client, tenant)
    email_campaign = await ls.campaign(
        session_factory, tenant, sequence_id, [seg_a, seg_b, seg_b2], exclude=[excluded]
    )
    expected = {c[n] for n in ("ana", "dee", "fay", "hal", "ivy")}
    assert await ls.audience_ids(session_factory, email_campaign) == expected
    both = await ls.campaign(
        session_factory,
        tenant,
        sequence_id,
        [seg_a, seg_b, seg_b2],
        exclude=[excluded],
        channels=["email", "sms"],
    )
    assert await ls.audience_ids(session_factory, both) == {c[n] for n in ("ana", "dee", "hal")}

    await ls.call(session_factory, email_campaign, "schedule")
    assert await ls.call(session_factory, email_campaign, "launch") == 5
    assert set(await ls.enrolled_contacts(session_factory, email_campaign)) == expected
    row = await ls.load(session_factory, email_campaign)
    assert (row.status, row.enrolled_count, row.launched_at) == ("running", 5, NOW)
    assert row.sequence_version_id is not None
    (launched,) = await ls.audits(session_factory, email_campaign, "campaign.launched")
    assert launched.data is not None
    assert launched.data["enrolled_count"] == 5
    assert launched.data["variance_seconds"] == 0


async def test_launch_twice_and_concurrently_enrolls_each_contact_once(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    ids = await _contacts(client, tenant, [f"p{n}" for n in range(6)])
    segment = await factories.static_segment(client, tenant, list(ids.values()))
    sequence_id = await ls.sequence(client, tenant)
    campaign_id = await ls.campaign(session_factory, tenant, sequence_id, [segment])
    await ls.call(session_factory, campaign_id, "schedule")

    counts = await asyncio.gather(
        *(ls.call(session_factory, campaign_id, "launch") for _ in range(4))
    )
    assert sorted(counts) == [6, 6, 6, 6]  # the losers answer the recorded count
    assert await ls.call(session_factory, campaign_id, "launch") == 6
    assert len(await ls.enrollments(session_factory, campaign_id)) == 6
    assert len(await ls.audits(session_factory, campaign_id, "campaign.launched")) == 1
    assert (await ls.load(session_factory, campaign_id)).status == "running"


async def test_a_launch_missed_while_workers_were_down_runs_on_recovery(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    state: AppState,
    settings: Settings,
) -> None:
    clock.freeze(NOW)
    ids = await _contacts(client, tenant, ["ana", "bob"])
    segment = await factories.static_segment(client, tenant, list(ids.values()))
    sequence_id = await ls.sequence(client, tenant)
    start = NOW + timedelta(hours=1)
    campaign_id = await ls.campaign(session_factory, tenant, sequence_id, [segment], start_at=start)
    await ls.call(session_factory, campaign_id, "schedule")
    await ls.call(session_factory, campaign_id, "schedule")  # scheduling twice: one action
    assert [(a.kind, a.due_at) for a in await ls.actions(session_factory, campaign_id)] == [
        ("launch", start)
    ]

    await ls.campaigns_scan(state, settings)  # not due yet
    assert (await ls.load(session_factory, campaign_id)).status == "scheduled"

    clock.advance(timedelta(hours=3))  # no worker ran at the start time
    await ls.campaigns_scan(state, settings)
    row = await ls.load(session_factory, campaign_id)
    assert (row.status, row.planned_start_at, row.launched_at) == (
        "running",
        start,
        NOW + timedelta(hours=3),
    )
    (launched,) = await ls.audits(session_factory, campaign_id, "campaign.launched")
    assert launched.data is not None
    assert launched.data["variance_seconds"] == 7200
    await harness.scan(state, settings)  # the engine sends the first step
    assert await ls.count_messages(session_factory, campaign_id, "welcome") == 2
    kinds = {
        (a.kind, a.done_at is not None) for a in await ls.actions(session_factory, campaign_id)
    }
    assert ("launch", True) in kinds

    # Everyone finished (one-step sequence): the completion check completes the campaign.
    clock.advance(timedelta(minutes=2))
    await ls.campaigns_scan(state, settings)
    row = await ls.load(session_factory, campaign_id)
    assert (row.status, row.finished_at) == ("completed", NOW + timedelta(hours=3, minutes=2))
    assert len(await ls.audits(session_factory, campaign_id, "campaign.completed")) == 1


async def test_pause_holds_waiting_enrollments_resume_sends_cancel_exits(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    state: AppState,
    settings: Settings,
) -> None:
    clock.freeze(NOW)
    ids = await _contacts(client, tenant, ["ana", "bob", "cy"])
    segment = await factories.static_segment(client, tenant, list(ids.values()))
    sequence_id = await ls.sequence(client, tenant, wait="P1D")
    campaign_id = await ls.campaign(session_factory, tenant, sequence_id, [segment])
    await ls.call(session_factory, campaign_id, "schedule")
    await ls.campaigns_scan(state, settings)  # launch (due now) + the engine's first pass
    await harness.scan(state, settings)
    assert await ls.count_messages(session_factory, campaign_id, "welcome") == 3
    waiting = await ls.enrollments(session_factory, campaign_id)
    assert {(e.step_key, e.next_action_at) for e in waiting} == {
        ("follow_up", NOW + timedelta(days=1))
    }

    await ls.call(session_factory, campaign_id, "pause")
    assert (await ls.load(session_factory, campaign_id)).status == "paused"
    clock.advance(timedelta(days=2))  # the follow-up falls due during the pause
    await harness.scan(state, settings)
    assert await ls.count_messages(session_factory, campaign_id, "follow_up") == 0
    assert {e.state for e in await ls.enrollments(session_factory, campaign_id)} == {"paused"}

    await ls.call(session_factory, campaign_id, "resume", "send_now")
    assert (await ls.load(session_factory, campaign_id)).status == "running"
    await harness.scan(state, settings)
    assert await ls.count_messages(session_factory, campaign_id, "follow_up") == 3
    assert [
        len(await ls.audits(session_factory, campaign_id, a))
        for a in ("campaign.paused", "campaign.resumed")
    ] == [1, 1]

    # Cancel a second campaign with waiting enrollments: all exit, pending actions go.
    other = await ls.campaign(
        session_factory, tenant, sequence_id, [segment], end_at=NOW + timedelta(days=30)
    )
    await ls.call(session_factory, other, "schedule")
    await ls.call(session_factory, other, "launch")
    await harness.scan(state, settings)
    await ls.call(session_factory, other, "cancel")
    rows = await ls.enrollments(session_factory, other)
    assert {(e.state, e.exit_reason) for e in rows} == {("exited", "campaign_cancelled")}
    assert all(a.done_at is not None for a in await ls.actions(session_factory, other))
    row = await ls.load(session_factory, other)
    assert (row.status, row.finished_at) == ("cancelled", NOW + timedelta(days=2))
    clock.advance(timedelta(days=2))
    await harness.scan(state, settings)
    assert await ls.count_messages(session_factory, other, "follow_up") == 0


async def test_end_time_completes_once_enrollments_finish(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    state: AppState,
    settings: Settings,
) -> None:
    clock.freeze(NOW)
    ids = await _contacts(client, tenant, ["ana", "bob"])
    segment = await factories.static_segment(client, tenant, list(ids.values()))
    sequence_id = await ls.sequence(client, tenant, wait="P2D")
    end = NOW + timedelta(days=1)
    campaign_id = await ls.campaign(session_factory, tenant, sequence_id, [segment], end_at=end)
    await ls.call(session_factory, campaign_id, "schedule")
    await ls.campaigns_scan(state, settings)
    await harness.scan(state, settings)

    clock.advance(timedelta(days=1))  # the end: enrollments still wait for their follow-up
    await ls.campaigns_scan(state, settings)
    assert (await ls.load(session_factory, campaign_id)).status == "running"
    pending = [a.kind for a in await ls.actions(session_factory, campaign_id) if a.done_at is None]
    assert pending == ["complete"]

    clock.advance(timedelta(days=1, minutes=1))  # follow-ups sent, sequence finished
    await harness.scan(state, settings)
    assert await ls.count_messages(session_factory, campaign_id, "follow_up") == 2
    await ls.campaigns_scan(state, settings)
    row = await ls.load(session_factory, campaign_id)
    assert row.status == "completed"


async def test_resume_with_skip_passes_over_sends_due_during_the_pause(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    state: AppState,
    settings: Settings,
) -> None:
    clock.freeze(NOW)
    ids = await _contacts(client, tenant, ["ana", "bob"])
    segment = await factories.static_segment(client, tenant, list(ids.values()))
    sequence_id = await ls.sequence(client, tenant, wait="P1D")
    campaign_id = await ls.campaign(session_factory, tenant, sequence_id, [segment])
    await ls.call(session_factory, campaign_id, "schedule")
    await ls.campaigns_scan(state, settings)
    await harness.scan(state, settings)
    await ls.call(session_factory, campaign_id, "pause")
    clock.advance(timedelta(days=2))  # the follow-up falls due during the pause

    await ls.call(session_factory, campaign_id, "resume", "skip")
    await harness.scan(state, settings)
    assert await ls.count_messages(session_factory, campaign_id, "follow_up") == 0
    for enrollment in await ls.enrollments(session_factory, campaign_id):
        assert enrollment.state == "completed"  # follow_up was the last step
        outcomes = await factories.outcomes(session_factory, str(enrollment.id))
        assert ("follow_up", "skipped") in outcomes
