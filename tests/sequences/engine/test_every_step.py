"""A sequence with every step type, end to end through the API: emails reach a real SMTP
server (aiosmtpd), the webhook step reaches a real local HTTP receiver and verifies with the
reference Standard Webhooks library, and the enrollment's timeline tells the story."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, datetime, timedelta
from email.message import Message as EmailMessage

import httpx
from standardwebhooks.webhooks import Webhook

from app.config import Settings, SmtpSettings
from app.core.clock import clock
from app.core.state import AppState
from app.sequences.models import Sequence
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.channels import HttpReceiver, SmtpSink, receiver, smtp_sink
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

__all__ = ["receiver", "smtp_sink"]  # fixtures used below
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _smtp(settings: Settings, sink: SmtpSink) -> Settings:
    channels = settings.channels.model_copy(
        update={"email_provider": "smtp", "smtp": SmtpSettings(host="127.0.0.1", port=sink.port)}
    )
    return settings.model_copy(update={"channels": channels})


def _parsed(sink: SmtpSink) -> list[EmailMessage]:
    return [email.message_from_bytes(envelope.content) for envelope in sink.received]  # type: ignore[arg-type]


async def test_every_step_type_against_real_peers(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
    smtp_sink: SmtpSink,
    receiver: HttpReceiver,
) -> None:
    clock.freeze(NOW)
    run_settings = _smtp(settings, smtp_sink)
    welcome = await factories.email_template(
        client, tenant, "Welcome {{ contact.attributes.first_name }}"
    )
    nudge = await factories.email_template(client, tenant, "Nudge")
    hooks = await factories.template(
        client, tenant, "webhook", {"payload": {"who": "{{ contact.email }}", "kind": "lead"}}
    )
    definition = {
        "steps": [
            {"key": "welcome", "type": "send", "channel": "email", "template_id": welcome},
            {"key": "pause", "type": "wait", "duration": "PT1H"},
            {
                "key": "reply",
                "type": "wait_for_event",
                "event_type": "email.replied",
                "timeout": "P3D",
                "on_event": "crm",
                "on_timeout": "nudge",
            },
            {"key": "nudge", "type": "send", "channel": "email", "template_id": nudge},
            {"key": "gave_up", "type": "exit", "reason": "no_reply"},
            {"key": "crm", "type": "webhook", "url": receiver.url, "template_id": hooks},
            {"key": "mark", "type": "update_contact", "attributes": {"stage": "replied"}},
            {
                "key": "check",
                "type": "branch",
                "condition": {
                    "attribute": {"field": "attributes.stage", "op": "eq", "value": "replied"}
                },
                "then": "won",
                "else": "gave_up",
            },
            {"key": "won", "type": "exit", "reason": "handed_to_sales"},
        ]
    }
    sequence_id = await factories.published_sequence(client, tenant, definition)
    contact_id = await factories.contact(
        client, tenant, email="ada@example.com", attributes={"first_name": "Ada"}
    )
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    await harness.run_jobs(run_settings)

    (first,) = _parsed(smtp_sink)
    assert first["Subject"] == "Welcome Ada"
    assert first["To"] == "ada@example.com"
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["List-Unsubscribe"].startswith("<http")

    clock.advance(timedelta(hours=1))
    await harness.scan(state, run_settings)  # the wait is over; now waiting for a reply
    row = await factories.enrollment(session_factory, enrollment_id)
    assert (row.state, row.step_key) == ("waiting", "reply")

    clock.advance(timedelta(hours=5))
    await factories.event(client, tenant, contact_id, "email.replied")
    await harness.run_jobs(run_settings)

    (call,) = receiver.requests
    assert call.json() == {"who": "ada@example.com", "kind": "lead"}
    async with session_factory() as session:
        sequence = await session.get(Sequence, uuid.UUID(sequence_id))
        assert sequence is not None
    # The reference library's signature for what was sent (its `verify` also checks the
    # timestamp against the real time, which the frozen clock is far from).
    stamp = datetime.fromtimestamp(int(call.headers["webhook-timestamp"]), tz=UTC)
    expected = Webhook(sequence.signing_secret).sign(
        call.headers["webhook-id"], stamp, call.body.decode()
    )
    assert expected in call.headers["webhook-signature"].split(" ")
    assert stamp == NOW + timedelta(hours=6)
    done = await factories.enrollment(session_factory, enrollment_id)
    assert (done.state, done.exit_reason) == ("exited", "handed_to_sales")
    assert len(smtp_sink.received) == 1  # no nudge for a contact who replied

    timeline = await client.get(
        f"/v1/enrollments/{enrollment_id}/timeline", params={"limit": 50}, headers=tenant.headers
    )
    assert timeline.status_code == 200, timeline.text
    story = [(e["step_key"], e["outcome"]) for e in reversed(timeline.json()["data"])]
    assert story == [
        ("welcome", "sent"),
        ("pause", "waiting"),
        ("reply", "waiting"),
        ("reply", "event"),
        ("crm", "called"),
        ("mark", "updated"),
        ("check", "branched"),
        ("won", "exited"),
    ]
    messages = await factories.messages(session_factory, enrollment_id)
    assert [(m.step_key, m.status) for m in messages] == [("welcome", "sent"), ("crm", "sent")]
