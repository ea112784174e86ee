"""Emissions of the engine and delivery (issue 6 items 2-3): `enrollment.*` from the API,
the engine and exits, `message.*` from delivery, the lease scan and tracking, and a bulk
launch emitting set-wise (one INSERT for all its events)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, cast

import httpx
from pydantic import SecretStr
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.channels import delivery_repository as outbox_sql
from app.channels.delivery import deliver
from app.channels.models import Message
from app.channels.tasks import deliver_due
from app.channels.tracking import make_token
from app.config import ChannelSettings, HttpProviderSettings, Settings
from app.contacts.models import Contact
from app.core.clock import clock, utcnow
from app.core.db import transaction
from app.core.state import AppState
from app.outbox.models import WebhookDelivery, WebhookEvent
from app.sequences.models import Enrollment
from tests.fixtures import factories
from tests.fixtures import launch as ls
from tests.fixtures import worker as harness
from tests.fixtures.channels import (  # noqa: F401 - fixtures used by these tests
    HttpReceiver,
    MakeCtx,
    Outbox,
    make_ctx,
    outbox,
    receiver,
)
from tests.fixtures.emissions import count, events, of_type, subscribe
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

LEASE = timedelta(seconds=ChannelSettings().sending_lease_seconds)


async def _send_sequence(client: httpx.AsyncClient, tenant: Tenant, *tail: dict[str, Any]) -> str:
    template = await factories.email_template(client, tenant, "Hi")
    steps = [{"key": "hello", "type": "send", "channel": "email", "template_id": template}]
    return await factories.published_sequence(client, tenant, {"steps": [*steps, *tail]})


async def test_api_enrollment_a_send_and_the_completion(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze()
    await subscribe(session_factory, tenant, ["enrollment.*", "message.*"])
    sequence_id = await _send_sequence(client, tenant)
    contact_id = await factories.contact(client, tenant, email="ana@acme.example")
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    # Enrolling again answers the same enrollment: no second `started`.
    again = await client.post(
        f"/v1/sequences/{sequence_id}/enrollments",
        json={"contact_id": contact_id},
        headers=tenant.headers,
    )
    assert again.json()["id"] == enrollment_id
    await harness.scan(state, settings)

    found = await events(session_factory, tenant)
    # The enrollment completes once its send step's message is settled.
    assert [kind for kind, _ in found] == [
        "enrollment.started",
        "message.sent",
        "enrollment.completed",
    ]
    ids = {
        "enrollment_id": enrollment_id,
        "contact_id": contact_id,
        "sequence_id": sequence_id,
        "campaign_id": None,
    }
    assert of_type(found, "enrollment.started") == [{**ids, "sequence_version": 1}]
    assert of_type(found, "enrollment.completed") == [{**ids, "sequence_version": 1}]
    (message,) = await factories.messages(session_factory, enrollment_id)
    assert of_type(found, "message.sent") == [
        {
            "message_id": str(message.id),
            **ids,
            "step_key": "hello",
            "channel": "email",
            "variant": None,
        }
    ]


async def test_exit_step_and_api_exit_carry_their_reason(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze()
    await subscribe(session_factory, tenant, ["enrollment.exited"])
    leaving = await factories.published_sequence(
        client, tenant, {"steps": [{"key": "bye", "type": "exit", "reason": "not_a_fit"}]}
    )
    waiting = await factories.published_sequence(
        client, tenant, {"steps": [{"key": "nap", "type": "wait", "duration": "P1D"}]}
    )
    contact_id = await factories.contact(client, tenant, email="ana@acme.example")
    first = await factories.enroll(client, tenant, leaving, contact_id)
    second = await factories.enroll(client, tenant, waiting, contact_id)
    await harness.scan(state, settings)
    exited = await client.post(
        f"/v1/enrollments/{second}/exit", json={"reason": "sales"}, headers=tenant.headers
    )
    assert exited.status_code == 200, exited.text

    found = of_type(await events(session_factory, tenant), "enrollment.exited")
    assert [(d["enrollment_id"], d["reason"]) for d in found] == [
        (first, "not_a_fit"),
        (second, "manual:sales"),
    ]


async def test_permanent_failure_and_unknown_outcome(
    make_ctx: MakeCtx,  # noqa: F811 - the fixture
    outbox: Outbox,  # noqa: F811
    receiver: HttpReceiver,  # noqa: F811
    tenant: Tenant,
    session_factory: Factory,
) -> None:
    clock.freeze()
    await subscribe(session_factory, tenant, ["message.failed", "message.unknown"])
    receiver.status = 400
    ctx = make_ctx(
        sms_provider="http",
        http=HttpProviderSettings(url=receiver.url, token=SecretStr("s3cret")),
    )
    rejected = await outbox.message(
        channel="sms", recipient="+4915112345678", content={"text": "x"}
    )
    assert (await deliver(ctx, [rejected.id])).failed == 1
    # An SMTP send whose worker died: `unknown`, found by the lease scan.
    lost = await outbox.message()
    now = clock.now()
    async with transaction(session_factory) as session:
        await outbox_sql.claim(session, "email", "smtp", now=now, lease_until=now + LEASE)
    clock.advance(LEASE + timedelta(seconds=1))
    assert (await deliver_due(cast(dict[str, Any], ctx)))["unknown"] == 1

    found = await events(session_factory, tenant)
    (failed,) = of_type(found, "message.failed")
    assert failed["message_id"] == str(rejected.id)
    assert failed["channel"] == "sms"
    assert failed["error"] == (await outbox.get(rejected.id)).error
    (unknown,) = of_type(found, "message.unknown")
    assert (unknown["message_id"], unknown["channel"]) == (str(lost.id), "email")
    assert unknown["enrollment_id"] == str(lost.enrollment_id)


async def test_opens_clicks_and_one_click_unsubscribe(
    client: httpx.AsyncClient,
    outbox: Outbox,  # noqa: F811
    tenant: Tenant,
    settings: Settings,
    session_factory: Factory,
) -> None:
    await subscribe(session_factory, tenant, ["*"])
    message = await outbox.message()
    waiting = await outbox.enrollment(message.enrollment_id)
    for _ in range(2):  # every open is emitted, not only the first
        opened = await client.get(f"/v1/t/o/{make_token(settings, 'open', message.id)}")
        assert opened.status_code == 200
    link = make_token(settings, "click", message.id, "https://example.com/pricing")
    assert (await client.get(f"/v1/t/c/{link}")).status_code in (302, 303, 307)
    unsubscribe = make_token(settings, "unsubscribe", message.id)
    assert (await client.post(f"/v1/unsubscribe/{unsubscribe}")).status_code == 200

    found = await events(session_factory, tenant)
    opens = of_type(found, "message.opened")
    assert [d["message_id"] for d in opens] == [str(message.id)] * 2
    (clicked,) = of_type(found, "message.clicked")
    assert clicked["url"] == "https://example.com/pricing"
    (unsubscribed,) = of_type(found, "contact.unsubscribed")
    assert unsubscribed == {
        "contact_id": str(message.contact_id),
        "channel": "email",
        "source": "one_click",
    }
    (suppressed,) = of_type(found, "contact.suppressed")
    assert suppressed == {
        "contact_id": str(message.contact_id),
        "channel": "email",
        "reason": "unsubscribed",
    }
    (exited,) = of_type(found, "enrollment.exited")
    assert (exited["enrollment_id"], exited["reason"]) == (str(waiting.id), "unsubscribed")


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_bulk_launch_emits_set_wise(
    client: httpx.AsyncClient, tenant: Tenant, state: AppState, session_factory: Factory
) -> None:
    """Every enrollment of a launch gets its `enrollment.started`, written by the launch's
    one INSERT ... SELECT (events and deliveries in the same statement), ids UUIDv7."""
    size = 300
    clock.freeze()
    now = utcnow()
    async with transaction(session_factory) as session:
        contacts = [
            Contact(workspace_id=tenant.workspace_id, email=f"c{i}@acme.example")
            for i in range(size)
        ]
        session.add_all(contacts)
        await session.flush()
        contact_ids = [str(item.id) for item in contacts]
    segment = await factories.static_segment(client, tenant, contact_ids)
    sequence_id = await ls.sequence(client, tenant)
    campaign_id = await ls.campaign(session_factory, tenant, sequence_id, [segment])
    every = await subscribe(session_factory, tenant, ["enrollment.*"])
    exact = await subscribe(session_factory, tenant, ["enrollment.started"])
    await ls.call(session_factory, campaign_id, "schedule")
    await subscribe(session_factory, tenant, ["campaign.*"])  # not for enrollments

    with statements(state.engine) as seen:
        assert await ls.call(session_factory, campaign_id, "launch") == size

    (enrolling,) = [text for text in seen if "INSERT INTO enrollments" in text]
    assert "INSERT INTO webhook_events" in enrolling
    assert "INSERT INTO webhook_deliveries" in enrolling
    # That statement, then campaign.status_changed and campaign.launched: whatever the size.
    assert sum("INSERT INTO webhook_events" in text for text in seen) == 3
    async with session_factory() as session:
        stored = (
            (
                await session.execute(
                    select(WebhookEvent).where(WebhookEvent.type == "enrollment.started")
                )
            )
            .scalars()
            .all()
        )
        enrollments = (
            (await session.execute(select(Enrollment).where(Enrollment.campaign_id == campaign_id)))
            .scalars()
            .all()
        )
        per_endpoint = Counter(
            (
                await session.execute(
                    select(WebhookDelivery.endpoint_id).where(
                        WebhookDelivery.event_type == "enrollment.started"
                    )
                )
            ).scalars()
        )
    assert len(stored) == len(enrollments) == size
    by_enrollment = {row.payload["data"]["enrollment_id"]: row for row in stored}
    assert set(by_enrollment) == {str(item.id) for item in enrollments}
    for enrollment in enrollments:
        row = by_enrollment[str(enrollment.id)]
        assert row.payload["data"] == {
            "enrollment_id": str(enrollment.id),
            "contact_id": str(enrollment.contact_id),
            "sequence_id": sequence_id,
            "sequence_version": 1,
            "campaign_id": str(campaign_id),
        }
        assert row.occurred_at == now
        assert row.id.version == 7
    assert per_endpoint == {every: size, exact: size}


async def test_a_render_error_is_a_failed_message(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    """A message the engine could not render is created `failed`: `message.failed`, and
    with `on_send_failure: fail`, the enrollment's exit."""
    clock.freeze()
    await subscribe(session_factory, tenant, ["message.*", "enrollment.exited"])
    template = await factories.template(
        client, tenant, "email", {"subject": "{{ 1 // 0 }}", "html": "<p>x</p>", "text": "x"}
    )
    steps = [{"key": "hello", "type": "send", "channel": "email", "template_id": template}]
    sequence_id = await factories.published_sequence(
        client, tenant, {"steps": steps, "settings": {"on_send_failure": "fail"}}
    )
    contact_id = await factories.contact(client, tenant, email="ana@acme.example")
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    await harness.scan(state, settings)

    (message,) = await factories.messages(session_factory, enrollment_id)
    assert message.status == "failed"
    found = await events(session_factory, tenant)
    (failed,) = of_type(found, "message.failed")
    assert (failed["message_id"], failed["error"]) == (str(message.id), message.error)
    (exited,) = of_type(found, "enrollment.exited")
    assert (exited["enrollment_id"], exited["reason"]) == (enrollment_id, "render_error")


async def test_messages_of_a_workspace_without_endpoints_emit_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze()
    await subscribe(session_factory, other_tenant, ["*"])
    sequence_id = await _send_sequence(client, tenant)
    contact_id = await factories.contact(client, tenant, email="ana@acme.example")
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    await harness.scan(state, settings)

    assert [m.status for m in await factories.messages(session_factory, enrollment_id)] == ["sent"]
    assert await count(session_factory) == 0
    async with session_factory() as session:
        assert await session.scalar(select(Message.id).limit(1)) is not None
