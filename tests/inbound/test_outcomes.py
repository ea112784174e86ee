"""What inbound provider events do: message rows, `email.*` events, suppressions and exits
(hard bounce, complaint; not soft bounce), replies waking `wait_for_event`, dedup, mixed
batches, workspaces kept apart, and `message.*` webhooks in the outbox."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.channels.models import Message
from app.config import Settings
from app.core.clock import clock
from app.core.db import transaction
from app.events.models import Event
from app.outbox.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.channels import Outbox
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant
from tests.inbound.helpers import (
    GENERIC,
    NOW,
    STANDARD,
    contact_events,
    message,
    post_ok,
    send_email,
    send_emails,
)

pytestmark = pytest.mark.usefixtures("providers")


async def _suppressions(client: httpx.AsyncClient, tenant: Tenant, address: str) -> str | None:
    """The address's suppression reason in the tenant's workspace, None when not suppressed."""
    response = await client.post(
        "/v1/suppressions/check",
        json={"channel": "email", "addresses": [address]},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result["reason"] if result["suppressed"] else None


async def _endpoint(factory: Factory, tenant: Tenant, event_types: list[str]) -> uuid.UUID:
    async with transaction(factory) as session:
        endpoint = WebhookEndpoint(
            workspace_id=tenant.workspace_id,
            url="http://127.0.0.1:9/hook",
            event_types=event_types,
            secret="whsec_" + "A" * 32,
        )
        session.add(endpoint)
        await session.flush()
        return endpoint.id


async def _deliveries(factory: Factory) -> list[tuple[str, dict[str, Any]]]:
    async with factory() as session:
        rows = await session.execute(
            select(WebhookDelivery.event_type, WebhookEvent.payload)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
        return [(row[0], row[1]) for row in rows]


async def test_hard_bounce_suppresses_exits_and_blocks_later_sends(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory, "gone@example.com")
    reason = "550 5.1.1 user unknown"
    answer = await post_ok(
        client,
        GENERIC,
        {"type": "bounced", "message_id": sent.message_id, "reason": reason, "event_id": "b1"},
    )
    assert answer["results"] == [{"index": 0, "status": "accepted"}]

    row = await message(session_factory, sent.message_id)
    assert (row.status, row.bounced_at) == ("bounced", NOW)
    assert await _suppressions(client, tenant, "gone@example.com") == "hard_bounce"
    enrollment = await factories.enrollment(session_factory, sent.enrollment_id)
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "hard_bounce")
    (event,) = await contact_events(client, tenant, sent.contact_id)
    assert event["type"] == "email.bounced"
    assert event["source"] == f"provider:{GENERIC}"
    assert event["properties"] == {
        "message_id": sent.message_id,
        "step_key": "welcome",
        "provider": GENERIC,
        "bounce_type": "hard",
        "reason": reason,
    }

    # A later send to the address is blocked by the suppression.
    welcome = await factories.email_template(client, tenant, "Again")
    steps = [{"key": "hello", "type": "send", "channel": "email", "template_id": welcome}]
    sequence_id = await factories.published_sequence(client, tenant, {"steps": steps})
    later = await factories.enroll(client, tenant, sequence_id, sent.contact_id)
    await harness.run_jobs(settings)
    assert await factories.messages(session_factory, later) == []
    assert ("hello", "skipped") in await factories.outcomes(session_factory, later)


async def test_soft_bounce_neither_suppresses_nor_exits(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory, "full@example.com")
    answer = await post_ok(
        client,
        STANDARD,
        {"type": "bounced", "message_id": sent.message_id, "bounce_type": "soft"},
    )
    assert answer["accepted"] == 1
    assert await _suppressions(client, tenant, "full@example.com") is None
    enrollment = await factories.enrollment(session_factory, sent.enrollment_id)
    assert enrollment.state == "waiting"
    row = await message(session_factory, sent.message_id)
    assert (row.status, row.bounced_at) == ("sent", None)
    (event,) = await contact_events(client, tenant, sent.contact_id)
    assert event["properties"]["bounce_type"] == "soft"


async def test_complaint_suppresses_and_exits(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory, "angry@example.com")
    await post_ok(client, GENERIC, {"type": "complained", "message_id": sent.message_id})
    assert await _suppressions(client, tenant, "angry@example.com") == "complaint"
    enrollment = await factories.enrollment(session_factory, sent.enrollment_id)
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "complaint")
    assert (await message(session_factory, sent.message_id)).status == "sent"


async def test_reply_wakes_the_waiting_enrollment(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory)
    waiting = await factories.enrollment(session_factory, sent.enrollment_id)
    assert (waiting.state, waiting.step_key) == ("waiting", "wait_reply")
    assert waiting.next_action_at == NOW + timedelta(days=3)

    clock.advance(timedelta(hours=5))
    # Found by the provider's id this time (the log provider's `log-<id>`).
    provider_id = sent.message.provider_message_id
    assert provider_id is not None
    await post_ok(client, STANDARD, {"type": "replied", "provider_message_id": provider_id})
    await harness.run_jobs(settings)  # the wake-up job ingestion enqueued

    sent_now = await factories.messages(session_factory, sent.enrollment_id)
    assert [m.step_key for m in sent_now] == ["welcome", "thanks"]
    assert sent_now[0].replied_at == NOW + timedelta(hours=5)
    done = await factories.enrollment(session_factory, sent.enrollment_id)
    assert (done.state, done.exit_reason) == ("completed", None)


async def test_status_only_moves_forward_and_first_times_stay_first(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory)
    later, earlier = NOW - timedelta(minutes=1), NOW - timedelta(minutes=9)
    answer = await post_ok(
        client,
        GENERIC,
        {
            "events": [
                # Bounce listed first: delivered still applies before it.
                {
                    "type": "bounced",
                    "message_id": sent.message_id,
                    "occurred_at": later.isoformat(),
                },
                {
                    "type": "delivered",
                    "message_id": sent.message_id,
                    "occurred_at": earlier.isoformat(),
                },
                {"type": "opened", "message_id": sent.message_id, "occurred_at": later.isoformat()},
                {
                    "type": "opened",
                    "message_id": sent.message_id,
                    "occurred_at": earlier.isoformat(),
                },
            ]
        },
    )
    assert answer["accepted"] == 4
    row = await message(session_factory, sent.message_id)
    assert (row.status, row.delivered_at, row.bounced_at) == ("bounced", earlier, later)
    assert row.first_opened_at == earlier
    # A late delivery report never undoes the bounce.
    await post_ok(client, GENERIC, {"type": "delivered", "message_id": sent.message_id})
    row = await message(session_factory, sent.message_id)
    assert (row.status, row.delivered_at) == ("bounced", earlier)


async def test_resend_is_a_duplicate_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    await _endpoint(session_factory, tenant, ["message.*"])
    sent = await send_email(client, tenant, settings, session_factory)
    before = len(await _deliveries(session_factory))
    click = {
        "type": "clicked",
        "message_id": sent.message_id,
        "url": "https://x.example",
        "event_id": "c-1",
    }
    assert (await post_ok(client, GENERIC, click))["results"][0]["status"] == "accepted"
    clock.advance(timedelta(minutes=1))
    again = await post_ok(client, GENERIC, {"events": [click, click]})
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert again["duplicates"] == 2
    assert len(await contact_events(client, tenant, sent.contact_id)) == 1
    assert [t for t, _ in await _deliveries(session_factory)][before:] == ["message.clicked"]
    # The same event id from another provider is another event.
    other = await post_ok(client, STANDARD, click)
    assert other["results"][0]["status"] == "accepted"


async def test_standard_webhooks_retry_is_deduplicated_by_webhook_id(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory)
    single = {"type": "opened", "message_id": sent.message_id}
    batch = {"events": [single, single]}
    first = await post_ok(client, STANDARD, single, webhook_id="msg_1")
    retry = await post_ok(client, STANDARD, single, webhook_id="msg_1")
    assert [first["accepted"], retry["duplicates"]] == [1, 1]
    in_batch = await post_ok(client, STANDARD, batch, webhook_id="msg_2")
    assert in_batch["accepted"] == 2  # two items, two ids (msg_2/0, msg_2/1)
    assert (await post_ok(client, STANDARD, batch, webhook_id="msg_2"))["duplicates"] == 2
    # Without an event id (generic scheme) nothing dedups: every post is an open.
    await post_ok(client, GENERIC, single)
    await post_ok(client, GENERIC, single)
    assert len(await contact_events(client, tenant, sent.contact_id)) == 5


async def test_batch_with_mixed_items_answers_each(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory)
    mid = sent.message_id
    items: list[Any] = [
        {"type": "delivered", "message_id": f"<{mid}@acme.example>"},
        {"type": "exploded", "message_id": mid},
        {"type": "delivered", "message_id": str(uuid.uuid4())},
        {"type": "delivered"},
        {"type": "opened", "message_id": mid, "provider_message_id": "x"},
        {
            "type": "delivered",
            "message_id": mid,
            "occurred_at": (NOW + timedelta(hours=1)).isoformat(),
        },
        {"type": "opened", "message_id": mid, "url": "https://x.example"},
        {"type": "delivered", "provider_message_id": "nobody-knows"},
        {"type": "opened", "message_id": "not-a-uuid"},
        "just a string",
        {"type": "replied", "message_id": mid, "surprise": True},
        {"type": "opened", "message_id": mid},
    ]
    answer = await post_ok(client, GENERIC, {"events": items})
    results = answer["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "invalid",
        "unknown_message",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "unknown_message",
        "invalid",
        "invalid",
        "invalid",
        "accepted",
    ]
    assert (answer["accepted"], answer["invalid"], answer["unknown"]) == (2, 8, 2)
    pointers = {r["index"]: r["errors"][0]["pointer"] for r in results if "errors" in r}
    assert pointers[1] == "/events/1/type"
    assert pointers[2] == "/events/2/message_id"
    assert pointers[5] == "/events/5/occurred_at"
    assert pointers[7] == "/events/7/provider_message_id"
    assert pointers[10] == "/events/10/surprise"
    assert results[5]["errors"][0]["code"] == "future_timestamp"
    row = await message(session_factory, mid)
    assert row.status == "delivered"
    assert row.first_opened_at == NOW
    # One event each for the two good items, nothing for the rest.
    assert sorted(e["type"] for e in await contact_events(client, tenant, sent.contact_id)) == [
        "email.delivered",
        "email.opened",
    ]


async def test_messages_map_to_their_own_workspace_and_nothing_leaks(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    mine = await send_email(client, tenant, settings, session_factory, "a@acme.example")
    theirs = await send_email(client, other_tenant, settings, session_factory, "b@globex.example")
    answer = await post_ok(
        client,
        GENERIC,
        {
            "events": [
                {"type": "bounced", "message_id": mine.message_id},
                {"type": "bounced", "message_id": theirs.message_id},
            ]
        },
    )
    assert answer["results"] == [
        {"index": 0, "status": "accepted"},
        {"index": 1, "status": "accepted"},
    ]
    # The answer carries nothing about either workspace: no ids, contacts or addresses.
    text = str(answer)
    for secret in (mine.contact_id, theirs.contact_id, str(tenant.workspace_id), "globex"):
        assert secret not in text

    assert [e["type"] for e in await contact_events(client, tenant, mine.contact_id)] == [
        "email.bounced"
    ]
    assert [e["type"] for e in await contact_events(client, other_tenant, theirs.contact_id)] == [
        "email.bounced"
    ]
    # Each workspace sees its own suppression only.
    assert await _suppressions(client, tenant, "a@acme.example") == "hard_bounce"
    assert await _suppressions(client, tenant, "b@globex.example") is None
    assert await _suppressions(client, other_tenant, "b@globex.example") == "hard_bounce"
    assert await _suppressions(client, other_tenant, "a@acme.example") is None
    # Another workspace's contact is not reachable with this workspace's key.
    response = await client.get(
        "/v1/events", params={"contact_id": theirs.contact_id}, headers=tenant.headers
    )
    assert response.json()["data"] == []


async def test_bounce_emits_message_bounced_to_a_subscribed_endpoint(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(NOW)
    endpoint_id = await _endpoint(session_factory, tenant, ["message.bounced", "message.opened"])
    await _endpoint(session_factory, other_tenant, ["*"])  # another workspace: gets nothing
    sent = await send_email(client, tenant, settings, session_factory)
    await post_ok(
        client,
        GENERIC,
        {
            "events": [
                {"type": "bounced", "message_id": sent.message_id, "reason": "550 no such user"},
                {"type": "delivered", "message_id": sent.message_id},  # not subscribed
            ]
        },
    )
    async with session_factory() as session:
        (delivery,) = (await session.execute(select(WebhookDelivery))).scalars().all()
        assert (delivery.endpoint_id, delivery.status) == (endpoint_id, "pending")
        assert delivery.workspace_id == tenant.workspace_id
        event = await session.get(WebhookEvent, delivery.event_id)
        assert event is not None
    assert event.type == "message.bounced"
    assert event.payload["data"] == {
        "message_id": sent.message_id,
        "contact_id": sent.contact_id,
        "enrollment_id": sent.enrollment_id,
        "sequence_id": str(sent.message.sequence_id),
        "campaign_id": None,
        "step_key": "welcome",
        "channel": "email",
        "variant": None,
        "bounce_type": "hard",
        "reason": "550 no such user",
    }


async def test_only_email_messages_take_provider_events(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    outbox = Outbox(session_factory, tenant)
    sms = await outbox.message(channel="sms", recipient="+4915112345678", content={"text": "Hi"})
    answer = await post_ok(client, GENERIC, {"type": "delivered", "message_id": str(sms.id)})
    assert answer["results"][0]["status"] == "unknown_message"
    assert (await message(session_factory, str(sms.id))).delivered_at is None


async def test_erased_contact_updates_the_message_only(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory, "forget@example.com")
    response = await client.post(f"/v1/contacts/{sent.contact_id}/erase", headers=tenant.headers)
    assert response.status_code in (200, 202), response.text
    answer = await post_ok(client, GENERIC, {"type": "bounced", "message_id": sent.message_id})
    assert answer["results"][0]["status"] == "accepted"
    row = await message(session_factory, sent.message_id)
    assert (row.status, row.recipient) == ("bounced", None)
    async with session_factory() as session:
        events = (await session.execute(select(Event))).scalars().all()
    assert events == []


async def test_shared_provider_message_id_is_not_guessed(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    a, b = await send_emails(
        client, tenant, settings, session_factory, ["one@example.com", "two@example.com"]
    )
    async with transaction(session_factory) as session:
        await session.execute(
            update(Message)
            .where(Message.id.in_([a.message.id, b.message.id]))
            .values(provider_message_id="shared-id")
        )
    answer = await post_ok(client, GENERIC, {"type": "bounced", "provider_message_id": "shared-id"})
    assert answer["results"][0]["status"] == "unknown_message"
    for sent in (a, b):
        assert (await message(session_factory, sent.message_id)).status == "sent"
