"""The engine end to end through the API and a real arq worker, with the clock moved:
"send -> wait_for_event email.replied P3D -> follow-up" for a contact who replies and one
who does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from app.config import Settings
from app.core.clock import clock
from app.core.state import AppState
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


async def _reply_sequence(client: httpx.AsyncClient, tenant: Tenant) -> str:
    first = await factories.email_template(client, tenant, "Welcome")
    follow = await factories.email_template(client, tenant, "Still there?")
    thanks = await factories.email_template(client, tenant, "Thanks for replying")
    definition = {
        "steps": [
            {"key": "welcome", "type": "send", "channel": "email", "template_id": first},
            {
                "key": "wait_reply",
                "type": "wait_for_event",
                "event_type": "email.replied",
                "timeout": "P3D",
                "on_event": "thanks",
                "on_timeout": "follow_up",
            },
            {"key": "follow_up", "type": "send", "channel": "email", "template_id": follow},
            {"key": "done", "type": "exit", "reason": "no_reply"},
            {"key": "thanks", "type": "send", "channel": "email", "template_id": thanks},
        ]
    }
    return await factories.published_sequence(client, tenant, definition)


async def test_reply_branches_and_silence_times_out(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    sequence_id = await _reply_sequence(client, tenant)
    replier = await factories.contact(client, tenant, email="ada@example.com")
    silent = await factories.contact(client, tenant, email="bob@example.com")
    a = await factories.enroll(client, tenant, sequence_id, replier)
    b = await factories.enroll(client, tenant, sequence_id, silent)
    await harness.run_jobs(settings)  # the start jobs

    for enrollment_id in (a, b):
        row = await factories.enrollment(session_factory, enrollment_id)
        assert (row.state, row.step_key) == ("waiting", "wait_reply")
        assert row.next_action_at == NOW + timedelta(days=3)
        sent = await factories.messages(session_factory, enrollment_id)
        assert [(m.step_key, m.status, m.content["subject"]) for m in sent] == [
            ("welcome", "sent", "Welcome")
        ]

    clock.advance(timedelta(days=1))
    await factories.event(client, tenant, replier, "email.replied")
    await harness.run_jobs(settings)  # the wake-up job, enqueued by ingestion
    replied = await factories.enrollment(session_factory, a)
    assert (replied.state, replied.exit_reason) == ("completed", None)
    assert [m.step_key for m in await factories.messages(session_factory, a)] == [
        "welcome",
        "thanks",
    ]
    # Nothing is due for the silent one yet: a scan one second before the timeout does nothing.
    clock.advance(timedelta(days=2) - timedelta(seconds=1))
    await harness.scan(state, settings)
    assert len(await factories.messages(session_factory, b)) == 1

    clock.advance(timedelta(seconds=1))
    await harness.scan(state, settings)
    silent_row = await factories.enrollment(session_factory, b)
    assert (silent_row.state, silent_row.exit_reason) == ("exited", "no_reply")
    sent_b = await factories.messages(session_factory, b)
    assert [m.step_key for m in sent_b] == ["welcome", "follow_up"]
    assert sent_b[1].due_at == NOW + timedelta(days=3)  # not early
    assert await factories.outcomes(session_factory, b) == [
        ("welcome", "sent"),
        ("wait_reply", "waiting"),
        ("wait_reply", "timeout"),
        ("follow_up", "sent"),
        ("done", "exited"),
    ]


async def test_enrolling_twice_answers_the_same_enrollment(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sequence_id = await _reply_sequence(client, tenant)
    contact_id = await factories.contact(client, tenant, email="ada@example.com")
    url = f"/v1/sequences/{sequence_id}/enrollments"
    first = await client.post(url, json={"contact_id": contact_id}, headers=tenant.headers)
    again = await client.post(url, json={"contact_id": contact_id}, headers=tenant.headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["sequence_version"] == 1
