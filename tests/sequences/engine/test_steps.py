"""Each step type and sequence setting through the API and a real burst worker, with exact
expected instants (the clock is frozen and moved)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from app.config import Settings
from app.contacts.models import Contact
from app.core.clock import clock
from app.core.db import transaction
from app.core.state import AppState
from app.sequences.definition import Variant
from app.sequences.engine import exits
from app.sequences.engine.variants import pick_variant
from app.sequences.enrollments import service as enrollments
from app.sequences.models import EnrollmentStep, SequenceVersion
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday 10:00 UTC


async def _run(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    steps: list[dict[str, Any]],
    contact: dict[str, Any] | None = None,
    settings_block: dict[str, Any] | None = None,
) -> tuple[str, str]:
    definition: dict[str, Any] = {"steps": steps}
    if settings_block:
        definition["settings"] = settings_block
    sequence_id = await factories.published_sequence(client, tenant, definition)
    contact_id = await factories.contact(
        client, tenant, **(contact or {"email": f"{uuid.uuid4().hex[:8]}@example.com"})
    )
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    await harness.run_jobs(settings)
    return enrollment_id, contact_id


async def test_wait_for_a_local_window_in_the_contacts_timezone(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)  # 19:00 in Tokyo, Monday
    steps: list[dict[str, Any]] = [
        {
            "key": "morning",
            "type": "wait",
            "until_window": {"days": ["tue", "wed"], "start": "09:00", "end": "11:00"},
        },
        {"key": "bye", "type": "exit"},
    ]
    enrollment_id, _ = await _run(
        client, tenant, settings, steps, {"email": "tokyo@example.com", "timezone": "Asia/Tokyo"}
    )
    row = await factories.enrollment(session_factory, enrollment_id)
    # Tuesday 09:00 in Tokyo is Tuesday 00:00 UTC.
    assert (row.step_key, row.next_action_at) == ("bye", datetime(2026, 11, 24, 0, 0, tzinfo=UTC))


async def test_wait_until_a_date_attribute_with_an_offset(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    steps: list[dict[str, Any]] = [
        {
            "key": "before_renewal",
            "type": "wait",
            "until_attribute": {"attribute": "renewal_date", "offset": "-P7D", "at": "09:00"},
        },
        {"key": "bye", "type": "exit"},
    ]
    contact = {"email": "r@example.com", "attributes": {"renewal_date": "2026-12-31"}}
    enrollment_id, _ = await _run(client, tenant, settings, steps, contact)
    row = await factories.enrollment(session_factory, enrollment_id)
    assert row.next_action_at == datetime(2026, 12, 24, 9, 0, tzinfo=UTC)

    missing, _ = await _run(client, tenant, settings, steps, {"email": "m@example.com"})
    assert await factories.outcomes(session_factory, missing) == [
        ("before_renewal", "skipped"),
        ("bye", "exited"),
    ]


async def test_branch_on_a_condition_and_update_contact(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    steps: list[dict[str, Any]] = [
        {
            "key": "is_pro",
            "type": "branch",
            "condition": {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}},
            "then": "tag",
            "else": "out",
        },
        {
            "key": "tag",
            "type": "update_contact",
            "attributes": {"vip": True, "plan": None},
            "next": "again",
        },
        {
            "key": "again",
            "type": "branch",
            "condition": {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}},
            "then": "out",
            "else": "done",
        },
        {"key": "done", "type": "exit", "reason": "tagged"},
        {"key": "out", "type": "exit", "reason": "not_pro"},
    ]
    pro, pro_contact = await _run(
        client, tenant, settings, steps, {"email": "p@example.com", "attributes": {"plan": "pro"}}
    )
    free, _ = await _run(
        client, tenant, settings, steps, {"email": "f@example.com", "attributes": {"plan": "free"}}
    )
    assert (await factories.enrollment(session_factory, pro)).exit_reason == "tagged"
    assert (await factories.enrollment(session_factory, free)).exit_reason == "not_pro"
    async with session_factory() as session:
        contact = await session.get(Contact, uuid.UUID(pro_contact))
        assert contact is not None
        assert contact.attributes == {"vip": True}


async def test_branch_on_segment_membership(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    listed = await factories.contact(client, tenant, email="in@example.com")
    created = await client.post(
        "/v1/segments", json={"name": "VIPs", "kind": "static"}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    segment_id = created.json()["id"]
    added = await client.post(
        f"/v1/segments/{segment_id}/members",
        json={"contact_ids": [listed]},
        headers=tenant.headers,
    )
    assert added.status_code in (200, 201, 204), added.text
    steps: list[dict[str, Any]] = [
        {"key": "vip", "type": "branch", "segment_id": segment_id, "then": "a", "else": "b"},
        {"key": "a", "type": "exit", "reason": "member"},
        {"key": "b", "type": "exit", "reason": "outsider"},
    ]
    sequence_id = await factories.published_sequence(client, tenant, {"steps": steps})
    outsider = await factories.contact(client, tenant, email="out@example.com")
    first = await factories.enroll(client, tenant, sequence_id, listed)
    second = await factories.enroll(client, tenant, sequence_id, outsider)
    await harness.run_jobs(settings)
    assert (await factories.enrollment(session_factory, first)).exit_reason == "member"
    assert (await factories.enrollment(session_factory, second)).exit_reason == "outsider"


async def test_variants_are_assigned_deterministically(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    a = await factories.email_template(client, tenant, "Variant A")
    b = await factories.email_template(client, tenant, "Variant B")
    variants = [
        {"key": "a", "template_id": a, "weight": 1},
        {"key": "b", "template_id": b, "weight": 1},
    ]
    steps = [{"key": "hello", "type": "send", "channel": "email", "variants": variants}]
    sequence_id = await factories.published_sequence(client, tenant, {"steps": steps})
    enrollments = []
    for index in range(6):
        contact_id = await factories.contact(client, tenant, email=f"v{index}@example.com")
        enrollments.append(
            (contact_id, await factories.enroll(client, tenant, sequence_id, contact_id))
        )
    await harness.run_jobs(settings)
    parsed = [Variant.model_validate(item) for item in variants]
    for contact_id, enrollment_id in enrollments:
        (message,) = await factories.messages(session_factory, enrollment_id)
        expected = pick_variant(parsed, uuid.UUID(contact_id), "hello").key
        assert message.variant == expected
        assert message.content["subject"] == f"Variant {expected.upper()}"


async def test_send_window_defers_and_never_drops(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(datetime(2026, 11, 23, 20, 0, tzinfo=UTC))  # Monday 20:00 in London
    welcome = await factories.email_template(client, tenant, "Hi")
    steps = [{"key": "hello", "type": "send", "channel": "email", "template_id": welcome}]
    window = {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
    enrollment_id, _ = await _run(
        client,
        tenant,
        settings,
        steps,
        {"email": "w@example.com", "timezone": "Europe/London"},
        {"send_window": window},
    )
    opening = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    row = await factories.enrollment(session_factory, enrollment_id)
    assert (row.state, row.next_action_at) == ("active", opening)
    assert await factories.messages(session_factory, enrollment_id) == []
    clock.freeze(opening)
    await harness.scan(state, settings)
    (message,) = await factories.messages(session_factory, enrollment_id)
    assert message.created_at == opening
    assert (await factories.enrollment(session_factory, enrollment_id)).state == "completed"


async def test_frequency_cap_across_sequences_defers_or_skips(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    welcome = await factories.email_template(client, tenant, "Hi")
    steps = [{"key": "hello", "type": "send", "channel": "email", "template_id": welcome}]
    capped = {"frequency_caps": [{"channel": "email", "max": 1, "period": "P1D"}]}
    skipping = {
        "frequency_caps": [{"channel": "email", "max": 1, "period": "P1D", "action": "skip"}]
    }
    first = await factories.published_sequence(client, tenant, {"steps": steps})
    deferring = await factories.published_sequence(
        client, tenant, {"steps": steps, "settings": capped}
    )
    skipper = await factories.published_sequence(
        client, tenant, {"steps": steps, "settings": skipping}
    )
    contact_id = await factories.contact(client, tenant, email="cap@example.com")
    await factories.enroll(client, tenant, first, contact_id)
    await harness.run_jobs(settings)
    clock.advance(timedelta(hours=1))
    deferred = await factories.enroll(client, tenant, deferring, contact_id)
    skipped = await factories.enroll(client, tenant, skipper, contact_id)
    await harness.run_jobs(settings)

    row = await factories.enrollment(session_factory, deferred)
    assert (row.state, row.next_action_at) == ("active", NOW + timedelta(days=1))
    assert await factories.outcomes(session_factory, skipped) == [
        ("hello", "skipped"),
        (None, "completed"),
    ]
    clock.freeze(NOW + timedelta(days=1))
    await harness.scan(state, settings)
    assert len(await factories.messages(session_factory, deferred)) == 1


async def test_sends_skip_contacts_without_consent_or_address(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    welcome = await factories.email_template(client, tenant, "Hi")
    steps = [{"key": "hello", "type": "send", "channel": "email", "template_id": welcome}]
    sequence_id = await factories.published_sequence(client, tenant, {"steps": steps})
    no_email = await factories.contact(client, tenant, external_id="no-email")
    opted_out = await factories.contact(client, tenant, email="out@example.com")
    response = await client.put(
        f"/v1/contacts/{opted_out}/consent/email",
        json={"status": "unsubscribed", "source": "preference_center"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    suppressed = await factories.contact(client, tenant, email="blocked@example.com")
    response = await client.post(
        "/v1/suppressions",
        json={"channel": "email", "address": "blocked@example.com", "reason": "manual"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    reasons = {}
    for name, contact_id in (
        ("no_address", no_email),
        ("unsubscribed", opted_out),
        ("suppressed", suppressed),
    ):
        reasons[name] = await factories.enroll(client, tenant, sequence_id, contact_id)
    await harness.run_jobs(settings)
    async with session_factory() as session:
        for reason, enrollment_id in reasons.items():
            result = await session.execute(
                select(EnrollmentStep.detail).where(
                    EnrollmentStep.enrollment_id == uuid.UUID(enrollment_id),
                    EnrollmentStep.outcome == "skipped",
                )
            )
            assert result.scalar_one() == {"reason": reason}
            assert await factories.messages(session_factory, enrollment_id) == []


async def test_exit_rules_end_enrollments_on_events_and_unsubscribes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    steps: list[dict[str, Any]] = [
        {"key": "nap", "type": "wait", "duration": "P7D"},
        {"key": "bye", "type": "exit"},
    ]
    rules = {
        "exit_rules": [
            {"on": "converted", "event_type": "purchase"},
            {"on": "event", "event_type": "demo.booked"},
            {"on": "unsubscribed"},
        ]
    }
    sequence_id = await factories.published_sequence(
        client, tenant, {"steps": steps, "settings": rules}
    )
    buyer = await factories.contact(client, tenant, email="buyer@example.com")
    booker = await factories.contact(client, tenant, email="booker@example.com")
    leaver = await factories.contact(client, tenant, email="leaver@example.com")
    idle = await factories.contact(client, tenant, email="idle@example.com")
    ids = {
        c: await factories.enroll(client, tenant, sequence_id, c)
        for c in (buyer, booker, leaver, idle)
    }
    await harness.run_jobs(settings)
    clock.advance(timedelta(hours=2))
    await factories.event(client, tenant, buyer, "purchase", revenue=30)
    await factories.event(client, tenant, booker, "demo.booked")
    response = await client.put(
        f"/v1/contacts/{leaver}/consent/email",
        json={"status": "unsubscribed", "source": "preference_center"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    await harness.run_jobs(settings)  # woken by the events, at once
    assert (await factories.enrollment(session_factory, ids[buyer])).exit_reason == "converted"
    assert (await factories.enrollment(session_factory, ids[booker])).exit_reason == (
        "event:demo.booked"
    )
    # A consent change is not an event: it is seen by the next claim (one-click unsubscribe
    # exits at once, see the channels tests).
    assert (await factories.enrollment(session_factory, ids[leaver])).state == "active"
    clock.advance(timedelta(days=7))
    await harness.scan(state, settings)
    assert (await factories.enrollment(session_factory, ids[leaver])).exit_reason == "unsubscribed"
    assert (await factories.enrollment(session_factory, ids[idle])).exit_reason == "exit_step"


async def test_pause_resume_and_cancel_by_campaign(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    welcome = await factories.email_template(client, tenant, "Hi")
    steps: list[dict[str, Any]] = [
        {"key": "nap", "type": "wait", "duration": "PT1H"},
        {"key": "hello", "type": "send", "channel": "email", "template_id": welcome},
    ]
    sequence_id = await factories.published_sequence(client, tenant, {"steps": steps})
    campaign = uuid.uuid4()
    contact_id = await factories.contact(client, tenant, email="c@example.com")
    async with transaction(session_factory, state.queue) as session:
        version = (
            await session.execute(
                select(SequenceVersion).where(SequenceVersion.sequence_id == uuid.UUID(sequence_id))
            )
        ).scalar_one()
        (enrollment_id,) = await enrollments.enroll_contacts(
            session,
            tenant.workspace_id,
            version,
            select(Contact.id).where(Contact.id == uuid.UUID(contact_id)),
            campaign_id=campaign,
            source="campaign",
        )
        again = await enrollments.enroll_contacts(
            session,
            tenant.workspace_id,
            version,
            select(Contact.id).where(Contact.id == uuid.UUID(contact_id)),
            campaign_id=campaign,
            source="campaign",
        )
        assert again == []  # launching twice enrolls nobody twice
    await harness.scan(state, settings)  # runs `nap`: due in an hour
    async with transaction(session_factory, state.queue) as session:
        assert await exits.pause_campaign(session, tenant.workspace_id, campaign, NOW) == 1
    clock.advance(timedelta(hours=2))
    await harness.scan(state, settings)
    assert await factories.messages(session_factory, str(enrollment_id)) == []  # held
    async with transaction(session_factory, state.queue) as session:
        assert await exits.resume_campaign(session, tenant.workspace_id, campaign, NOW) == 1
    await harness.scan(state, settings)
    assert len(await factories.messages(session_factory, str(enrollment_id))) == 1

    other = await factories.contact(client, tenant, email="d@example.com")
    async with transaction(session_factory, state.queue) as session:
        (second,) = await enrollments.enroll_contacts(
            session,
            tenant.workspace_id,
            version,
            select(Contact.id).where(Contact.id == uuid.UUID(other)),
            campaign_id=campaign,
            source="campaign",
        )
        ended = await exits.cancel_campaign(session, tenant.workspace_id, campaign, NOW)
        assert ended == [second]
    row = await factories.enrollment(session_factory, str(second))
    assert (row.state, row.exit_reason) == ("exited", "campaign_cancelled")
