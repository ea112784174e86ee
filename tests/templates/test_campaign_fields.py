"""Issue 16 item 6: `campaign.*` merge fields are filled in previews and in sends (an email
through a real SMTP server carries the campaign's name)."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import httpx

from app.campaigns.models import Campaign
from app.config import Settings, SmtpSettings
from app.core.clock import clock
from app.core.db import transaction
from app.core.state import AppState
from app.templates.rendering import CAMPAIGN_FIELDS
from tests.fixtures import factories
from tests.fixtures import launch as ls
from tests.fixtures import worker as harness
from tests.fixtures.channels import SmtpSink, smtp_sink
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

__all__ = ["smtp_sink"]  # fixture used below
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EVERY_FIELD = " | ".join(f"{name}={{{{ campaign.{name} }}}}" for name in sorted(CAMPAIGN_FIELDS))


async def _campaign(
    factory: Factory, tenant: Tenant, sequence_id: str, include: list[str], **fields: Any
) -> uuid.UUID:
    """An approved campaign (tests/fixtures/launch.py), then given the fields under test."""
    campaign_id = await ls.campaign(factory, tenant, sequence_id, include)
    async with transaction(factory) as session:
        row = await session.get(Campaign, campaign_id)
        assert row is not None
        for name, value in fields.items():
            setattr(row, name, value)
    return campaign_id


async def _sms_template(client: httpx.AsyncClient, tenant: Tenant, text: str) -> str:
    response = await client.post(
        "/v1/templates",
        json={"name": "Campaign fields", "channel": "sms", "content": {"text": text}},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


async def test_preview_fills_campaign_fields_from_a_campaign_or_a_made_up_one(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    template_id = await _sms_template(client, tenant, EVERY_FIELD)
    sequence_id = await ls.sequence(client, tenant)
    campaign_id = await _campaign(
        session_factory,
        tenant,
        sequence_id,
        [],
        name="Spring Sale",
        description="Twenty percent off",
        objective="Reactivation",
        start_at=NOW,
    )
    url = f"/v1/templates/{template_id}/preview"
    contact = {"email": "ana@acme.example"}
    response = await client.post(
        url, json={"contact": contact, "campaign_id": str(campaign_id)}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"]["text"] == (
        "description=Twenty percent off | end_at= | id="
        f"{campaign_id} | name=Spring Sale | objective=Reactivation | "
        "start_at=2026-12-01T09:00:00+00:00 | tags=[] | timezone=UTC | type=one_off"
    )
    assert response.json()["undefined_fields"] == ["end_at"]

    made_up = {"name": "Draft idea", "tags": ["vip"]}
    response = await client.post(
        url, json={"contact": contact, "campaign": made_up}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    text = response.json()["content"]["text"]
    assert "name=Draft idea" in text
    assert "tags=['vip']" in text

    # Another workspace's campaign is not found; both ways at once are refused.
    other = await _sms_template(client, other_tenant, "{{ campaign.name }}")
    response = await client.post(
        f"/v1/templates/{other}/preview",
        json={"contact": contact, "campaign_id": str(campaign_id)},
        headers=other_tenant.headers,
    )
    assert response.status_code == 404, response.text
    response = await client.post(
        url,
        json={"contact": contact, "campaign_id": str(uuid.uuid4()), "campaign": made_up},
        headers=tenant.headers,
    )
    assert response.status_code == 422, response.text


async def test_a_sent_email_carries_the_campaign_name(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    state: AppState,
    session_factory: Factory,
    smtp_sink: SmtpSink,
) -> None:
    clock.freeze(NOW)
    channels = settings.channels.model_copy(
        update={
            "email_provider": "smtp",
            "smtp": SmtpSettings(host="127.0.0.1", port=smtp_sink.port),
        }
    )
    run_settings = settings.model_copy(update={"channels": channels})
    template_id = await factories.template(
        client,
        tenant,
        "email",
        {
            "subject": "{{ campaign.name }}: news for {{ contact.attributes.first_name }}",
            "text": "Part of {{ campaign.name }} ({{ campaign.objective }}).",
            # A loop: this field renders in the sandbox process.
            "html": "{% for n in [1, 2] %}<p>{{ n }}. {{ campaign.name }}</p>{% endfor %}",
        },
    )
    sequence_id = await factories.published_sequence(
        client,
        tenant,
        {
            "steps": [
                {"key": "hello", "type": "send", "channel": "email", "template_id": template_id}
            ]
        },
    )
    contact_id = await factories.contact(
        client, tenant, email="ada@example.com", attributes={"first_name": "Ada"}
    )
    segment_id = await factories.static_segment(client, tenant, [contact_id])
    campaign_id = await _campaign(
        session_factory,
        tenant,
        sequence_id,
        [segment_id],
        name="Winter Launch",
        objective="Awareness",
    )
    await ls.call(session_factory, campaign_id, "schedule")
    assert await ls.call(session_factory, campaign_id, "launch") == 1
    await harness.scan(state, run_settings)  # the engine's scheduler tick, then its jobs

    (envelope,) = smtp_sink.received
    sent = email.message_from_bytes(envelope.content)  # type: ignore[arg-type]
    assert sent["Subject"] == "Winter Launch: news for Ada"
    parts = {part.get_content_type(): _decoded(part) for part in sent.walk()}
    assert parts["text/plain"].strip() == "Part of Winter Launch (Awareness)."
    assert "<p>1. Winter Launch</p><p>2. Winter Launch</p>" in parts["text/html"]


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    return payload.decode() if isinstance(payload, bytes) else ""
