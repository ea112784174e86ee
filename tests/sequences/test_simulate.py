"""The dry run: the real engine's timeline for a contact and a script of events, and nothing
left behind (rows, jobs, contact changes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.channels.models import Message
from app.config import Settings
from app.contacts.models import Contact
from app.core.clock import clock
from app.events.models import Event
from app.sequences.models import Enrollment, EnrollmentStep, SequenceVersion
from tests.fixtures import factories
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday, 19:00 in Tokyo
TABLES = (Contact, Enrollment, EnrollmentStep, Message, Event, SequenceVersion)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


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


async def _simulate(
    client: httpx.AsyncClient, tenant: Tenant, sequence_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/sequences/{sequence_id}/simulate",
        json={"start_at": _iso(START), **body},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _steps(result: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    return [(e["step_key"], e["outcome"], e["at"]) for e in result["timeline"]]


async def _counts(factory: Factory) -> dict[str, int]:
    async with factory() as session:
        return {
            table.__tablename__: await session.scalar(select(func.count()).select_from(table)) or 0
            for table in TABLES
        }


async def test_a_reply_after_a_day_takes_the_thanks_branch(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sequence_id = await _reply_sequence(client, tenant)
    result = await _simulate(
        client,
        tenant,
        sequence_id,
        contact={"email": "ada@example.com", "attributes": {"first_name": "Ada"}},
        events=[{"type": "email.replied", "after": "P1D"}],
    )
    day = _iso(START + timedelta(days=1))
    assert _steps(result) == [
        ("welcome", "sent", _iso(START)),
        ("wait_reply", "waiting", _iso(START)),
        (None, "scripted_event", day),
        ("wait_reply", "event", day),
        ("thanks", "sent", day),
        (None, "completed", day),
    ]
    welcome = result["timeline"][0]["message"]
    assert welcome == {
        "channel": "email",
        "variant": None,
        "recipient": "ada@example.com",
        "subject": "Welcome",
        "text": "Hello Ada",
        "error": None,
    }
    assert result["timeline"][4]["message"]["subject"] == "Thanks for replying"
    assert result["final"] == {
        "state": "completed",
        "exit_reason": None,
        "step_key": "thanks",
        "next_action_at": None,
        "stopped": "finished",
    }
    assert (result["version"], result["draft"], result["contact_id"]) == (1, False, None)
    assert result["horizon_end"] == _iso(START + timedelta(days=90))


async def test_silence_times_out_after_three_days_and_follows_up(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sequence_id = await _reply_sequence(client, tenant)
    result = await _simulate(client, tenant, sequence_id, contact={"email": "bob@example.com"})
    timeout = _iso(START + timedelta(days=3))
    assert _steps(result) == [
        ("welcome", "sent", _iso(START)),
        ("wait_reply", "waiting", _iso(START)),
        ("wait_reply", "timeout", timeout),
        ("follow_up", "sent", timeout),
        ("done", "exited", timeout),
    ]
    assert result["timeline"][3]["message"]["subject"] == "Still there?"
    assert (result["final"]["state"], result["final"]["exit_reason"]) == ("exited", "no_reply")


async def test_a_short_horizon_stops_while_waiting(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sequence_id = await _reply_sequence(client, tenant)
    result = await _simulate(
        client, tenant, sequence_id, contact={"email": "bob@example.com"}, horizon="P2D"
    )
    assert [entry[1] for entry in _steps(result)] == ["sent", "waiting"]
    assert result["final"] == {
        "state": "waiting",
        "exit_reason": None,
        "step_key": "wait_reply",
        "next_action_at": _iso(START + timedelta(days=3)),
        "stopped": "horizon",
    }


async def test_send_window_defers_in_the_contacts_timezone(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    welcome = await factories.email_template(client, tenant, "Welcome")
    definition = {
        "steps": [{"key": "welcome", "type": "send", "channel": "email", "template_id": welcome}],
        "settings": {
            "send_window": {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "09:00",
                "end": "17:00",
            },
            "default_timezone": "Europe/Paris",
        },
    }
    sequence_id = await factories.published_sequence(client, tenant, definition)
    result = await _simulate(
        client, tenant, sequence_id, contact={"email": "aiko@example.jp", "timezone": "Asia/Tokyo"}
    )
    # Monday 19:00 in Tokyo: the window opens Tuesday 09:00 JST = Tuesday 00:00 UTC.
    opening = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert _steps(result) == [
        ("welcome", "deferred", _iso(START)),
        ("welcome", "sent", _iso(opening)),
        (None, "completed", _iso(opening)),
    ]
    assert result["timeline"][0]["detail"] == {
        "reason": "send_window",
        "until": opening.isoformat(),
    }


async def _branching_sequence(client: httpx.AsyncClient, tenant: Tenant, *, update: bool) -> str:
    pro = await factories.email_template(client, tenant, "Pro tips")
    upgrade = await factories.email_template(client, tenant, "Upgrade?")
    steps: list[dict[str, Any]] = [
        {
            "key": "is_pro",
            "type": "branch",
            "condition": {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}},
            "then": "pro_tips",
            "else": "upgrade",
        },
        {"key": "pro_tips", "type": "send", "channel": "email", "template_id": pro, "next": "end"},
        {"key": "upgrade", "type": "send", "channel": "email", "template_id": upgrade},
        {"key": "end", "type": "exit", "reason": "done"},
    ]
    if update:
        steps.insert(0, {"key": "mark", "type": "update_contact", "attributes": {"plan": "pro"}})
    return await factories.published_sequence(client, tenant, {"steps": steps})


async def test_branch_on_an_attribute_of_the_hypothetical_contact(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sequence_id = await _branching_sequence(client, tenant, update=False)
    for plan, expected in (("pro", ("pro_tips", "Pro tips")), ("free", ("upgrade", "Upgrade?"))):
        result = await _simulate(
            client,
            tenant,
            sequence_id,
            contact={"email": "c@example.com", "attributes": {"plan": plan}},
        )
        branch, send, _ = result["timeline"]
        assert (branch["outcome"], branch["detail"]) == (
            "branched",
            {"result": "then" if plan == "pro" else "else"},
        )
        assert (send["step_key"], send["message"]["subject"]) == expected


async def test_update_contact_is_seen_by_the_branch_and_the_contact_is_unchanged(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    sequence_id = await _branching_sequence(client, tenant, update=True)
    contact_id = await factories.contact(
        client, tenant, email="dora@example.com", attributes={"plan": "free"}
    )
    result = await _simulate(client, tenant, sequence_id, contact_id=contact_id)
    assert [(e["step_key"], e["outcome"]) for e in result["timeline"]] == [
        ("mark", "updated"),
        ("is_pro", "branched"),
        ("pro_tips", "sent"),
        ("end", "exited"),
    ]
    assert result["timeline"][2]["message"]["recipient"] == "dora@example.com"
    assert result["contact_id"] == contact_id
    stored = await client.get(f"/v1/contacts/{contact_id}", headers=tenant.headers)
    assert stored.json()["attributes"] == {"plan": "free"}


async def test_nothing_is_stored_queued_or_sent(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: Factory,
    redis: Redis,
    settings: Settings,
) -> None:
    sequence_id = await _branching_sequence(client, tenant, update=True)
    # A dynamic segment makes `update_contact` buffer a re-evaluation job.
    segment = await client.post(
        "/v1/segments",
        json={
            "name": "Pros",
            "kind": "dynamic",
            "rule": {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}},
        },
        headers=tenant.headers,
    )
    assert segment.status_code == 201, segment.text
    reply_id = await _reply_sequence(client, tenant)
    contact_id = await factories.contact(client, tenant, email="eve@example.com")
    await redis.flushall()
    before = await _counts(session_factory)

    await _simulate(client, tenant, sequence_id, contact_id=contact_id)
    await _simulate(client, tenant, sequence_id, contact={"email": "new@example.com"})
    await _simulate(
        client,
        tenant,
        reply_id,
        contact_id=contact_id,
        events=[{"type": "email.replied", "after": "PT1H", "properties": {"revenue": 3}}],
    )

    assert await _counts(session_factory) == before
    assert await redis.zcard(settings.worker.queue_name) == 0
    assert await redis.keys("arq:job:*") == []


async def test_simulates_the_draft_when_asked(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    sequence_id = await _reply_sequence(client, tenant)
    current = await client.get(f"/v1/sequences/{sequence_id}", headers=tenant.headers)
    definition = current.json()["definition"]
    definition["steps"][1]["timeout"] = "P5D"
    patched = await client.patch(
        f"/v1/sequences/{sequence_id}",
        json={"definition": definition},
        headers={**tenant.headers, "If-Match": current.headers["ETag"]},
    )
    assert patched.status_code == 200, patched.text
    before = await _counts(session_factory)

    result = await _simulate(client, tenant, sequence_id, contact={"email": "f@e.com"}, draft=True)
    assert (result["version"], result["draft"]) == (None, True)
    assert result["timeline"][2]["at"] == _iso(START + timedelta(days=5))
    published = await _simulate(client, tenant, sequence_id, contact={"email": "f@e.com"})
    assert published["timeline"][2]["at"] == _iso(START + timedelta(days=3))
    assert await _counts(session_factory) == before

    definition["steps"][1]["on_event"] = "nowhere"
    current = await client.get(f"/v1/sequences/{sequence_id}", headers=tenant.headers)
    await client.patch(
        f"/v1/sequences/{sequence_id}",
        json={"definition": definition},
        headers={**tenant.headers, "If-Match": current.headers["ETag"]},
    )
    invalid = await client.post(
        f"/v1/sequences/{sequence_id}/simulate",
        json={"contact": {"email": "f@e.com"}, "draft": True},
        headers=tenant.headers,
    )
    assert invalid.status_code == 422, invalid.text
    assert invalid.json()["errors"][0]["pointer"].startswith("/definition/steps/1")


async def test_start_defaults_to_now(client: httpx.AsyncClient, tenant: Tenant) -> None:
    clock.freeze(START + timedelta(hours=5))
    sequence_id = await _reply_sequence(client, tenant)
    response = await client.post(
        f"/v1/sequences/{sequence_id}/simulate",
        json={"contact": {"email": "g@example.com"}},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["start_at"] == _iso(START + timedelta(hours=5))


async def test_unknown_sequence_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/sequences/0190f3c8-8d2e-7b61-9a55-000000000000/simulate",
        json={"contact": {"email": "a@example.com"}},
        headers=tenant.headers,
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_unpublished_sequence_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post(
        "/v1/sequences",
        json={"name": "Draft", "definition": {"steps": [{"key": "x", "type": "exit"}]}},
        headers=tenant.headers,
    )
    response = await client.post(
        f"/v1/sequences/{created.json()['id']}/simulate",
        json={"contact": {"email": "a@example.com"}},
        headers=tenant.headers,
    )
    assert response.status_code == 422, response.text
    assert "no published version" in response.json()["detail"]


def _event(**fields: Any) -> dict[str, Any]:
    return {"type": "email.replied", **fields}


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"contact_id": "0190f3c8-8d2e-7b61-9a55-000000000000"}, "/contact_id"),
        ({"contact": {"email": "taken@example.com"}}, "/contact/email"),
        ({"contact": {"timezone": "Mars/Olympus"}}, "/contact/timezone"),
        ({"contact": {"attributes": {"name": "a\u0000b"}}}, "/contact/attributes/name"),
        ({"contact": {}, "events": [_event(at="2026-11-22T10:00:00Z")]}, "/events/0/at"),
        ({"contact": {}, "events": [_event(after="-P1D")]}, "/events/0/after"),
        ({"contact": {}, "events": [_event(after="soon")]}, "/events/0/after"),
        ({"contact": {}, "events": [_event(after="P91D")]}, "/events/0/after"),
        ({"contact": {}, "events": [_event()]}, "/events/0"),
        ({"contact": {}, "events": [_event(after="P1D", at="2026-11-24T10:00:00Z")]}, "/events/0"),
        ({"contact": {}, "events": [_event(after="P1D")] * 101}, "/events"),
        ({"contact": {}, "events": [_event(after="P1D", properties={"revenue": "x"})]}, None),
        ({"contact": {}, "events": [{"type": "bad type", "after": "P1D"}]}, "/events/0/type"),
        ({"contact": {}, "horizon": "P367D"}, "/horizon"),
        ({"contact": {}, "horizon": "PT0S"}, "/horizon"),
        ({"contact": {}, "start_at": "9999-12-31T00:00:00Z"}, "/start_at"),
        ({"contact": {}, "start_at": "2026-11-23T10:00:00"}, "/start_at"),
        ({"contact": {}, "version": 7}, "/version"),
        ({"contact": {}, "version": 1, "draft": True}, ""),
        ({}, ""),
        ({"contact": {}, "contact_id": "0190f3c8-8d2e-7b61-9a55-000000000000"}, ""),
        ({"contact": {}, "surprise": 1}, "/surprise"),
    ],
)
async def test_invalid_requests_are_422(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], pointer: str | None
) -> None:
    sequence_id = await _reply_sequence(client, tenant)
    await factories.contact(client, tenant, email="taken@example.com")
    response = await client.post(
        f"/v1/sequences/{sequence_id}/simulate",
        json={"start_at": _iso(START), **body},
        headers=tenant.headers,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if pointer is not None:
        pointers = [error["pointer"] for error in response.json()["errors"]]
        assert any(p == pointer or p.startswith(pointer + "/") for p in pointers), pointers


async def test_a_read_only_key_may_simulate(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sequence_id = await _reply_sequence(client, tenant)
    key = await client.post(
        "/v1/api-keys",
        json={"name": "reader", "scopes": ["sequences:read"]},
        headers=tenant.headers,
    )
    assert key.status_code == 201, key.text
    response = await client.post(
        f"/v1/sequences/{sequence_id}/simulate",
        json={"contact": {"email": "h@example.com"}, "start_at": _iso(START)},
        headers={"Authorization": f"Bearer {key.json()['key']}"},
    )
    assert response.status_code == 200, response.text


async def test_an_endless_loop_stops_at_the_pass_limit(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    definition = {
        "steps": [
            {"key": "tick", "type": "wait", "duration": "PT1H", "next": "mark"},
            {
                "key": "mark",
                "type": "update_contact",
                "attributes": {"ticked": True},
                "next": "tick",
            },
        ]
    }
    sequence_id = await factories.published_sequence(client, tenant, definition)
    result = await _simulate(client, tenant, sequence_id, contact={"email": "loop@example.com"})
    assert result["final"]["stopped"] == "pass_limit"
    assert result["final"]["state"] == "active"
    assert result["final"]["next_action_at"] == _iso(START + timedelta(hours=500))


async def test_sms_and_webhook_steps_preview_without_calling_anyone(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sms = await factories.template(client, tenant, "sms", {"text": "Hi {{ contact.phone }}"})
    definition = {
        "steps": [
            {"key": "text", "type": "send", "channel": "sms", "template_id": sms},
            {"key": "email", "type": "send", "channel": "email", "template_id": sms},
            {"key": "crm", "type": "webhook", "url": "http://127.0.0.1:9/hook"},
        ]
    }
    definition["steps"][1]["template_id"] = await factories.email_template(client, tenant, "Hi")
    sequence_id = await factories.published_sequence(client, tenant, definition)
    result = await _simulate(client, tenant, sequence_id, contact={"phone": "+351 912 345 678"})
    text, email, crm, done = result["timeline"]
    assert text["message"] == {
        "channel": "sms",
        "variant": None,
        "recipient": "+351912345678",
        "subject": None,
        "text": "Hi +351912345678",
        "error": None,
    }
    assert (email["outcome"], email["detail"], email["message"]) == (
        "skipped",
        {"reason": "no_address"},
        None,
    )
    assert (crm["outcome"], crm["message"]["recipient"]) == ("called", "http://127.0.0.1:9/hook")
    assert done["outcome"] == "completed"
