"""Inbound test helpers: the two providers (one per signature scheme), request
signing (Standard Webhooks through the reference `standardwebhooks` library; the HMAC
scheme as docs/inbound.md specifies it), and real sent emails made through the API and a
burst worker."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from app.channels.models import Message
from app.config import Settings
from app.core.clock import utcnow
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
STANDARD = "acme-mail"  # scheme standard_webhooks
GENERIC = "generic-esp"  # scheme hmac_sha256
STANDARD_SECRET = "whsec_" + base64.b64encode(b"inbound-standard-secret-0123456").decode()
GENERIC_SECRET = "generic-provider-secret"
SCHEMES = (STANDARD, GENERIC)


def standard_headers(
    body: bytes,
    *,
    secret: str = STANDARD_SECRET,
    webhook_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    moment = at or utcnow()
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    signature = Webhook(secret).sign(webhook_id, moment, body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def generic_headers(
    body: bytes, *, secret: str = GENERIC_SECRET, at: datetime | None = None
) -> dict[str, str]:
    timestamp = str(int((at or utcnow()).timestamp()))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Herald-Timestamp": timestamp,
        "X-Herald-Signature": f"sha256={digest.hexdigest()}",
    }


def signed(provider: str, body: bytes, **options: Any) -> dict[str, str]:
    sign = standard_headers if provider == STANDARD else generic_headers
    return sign(body, **options)


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


async def post(
    client: httpx.AsyncClient, provider: str, payload: Any, **options: Any
) -> httpx.Response:
    body = encode(payload)
    return await client.post(
        f"/v1/inbound/{provider}", content=body, headers=signed(provider, body, **options)
    )


async def post_ok(
    client: httpx.AsyncClient, provider: str, payload: Any, **options: Any
) -> dict[str, Any]:
    response = await post(client, provider, payload, **options)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@dataclass
class Sent:
    """One email Herald sent (log provider), with its contact and enrollment, parked in a
    `wait_for_event email.replied` step (reply -> `thanks`, 3 days of silence -> exit)."""

    contact_id: str
    enrollment_id: str
    message: Message

    @property
    def message_id(self) -> str:
        return str(self.message.id)


async def reply_sequence(client: httpx.AsyncClient, tenant: Tenant) -> str:
    welcome = await factories.email_template(client, tenant, "Welcome")
    thanks = await factories.email_template(client, tenant, "Thanks for replying")
    definition = {
        "steps": [
            {"key": "welcome", "type": "send", "channel": "email", "template_id": welcome},
            {
                "key": "wait_reply",
                "type": "wait_for_event",
                "event_type": "email.replied",
                "timeout": "P3D",
                "on_event": "thanks",
                "on_timeout": "done",
            },
            {"key": "done", "type": "exit", "reason": "no_reply"},
            {"key": "thanks", "type": "send", "channel": "email", "template_id": thanks},
        ]
    }
    return await factories.published_sequence(client, tenant, definition)


async def send_emails(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    factory: Factory,
    emails: list[str],
) -> list[Sent]:
    """Enroll one contact per address and run the worker: each gets the welcome email."""
    sequence_id = await reply_sequence(client, tenant)
    enrolled = []
    for email in emails:
        contact_id = await factories.contact(client, tenant, email=email)
        enrolled.append(
            (contact_id, await factories.enroll(client, tenant, sequence_id, contact_id))
        )
    await harness.run_jobs(settings)
    sent = []
    for contact_id, enrollment_id in enrolled:
        (message,) = await factories.messages(factory, enrollment_id)
        assert message.status == "sent"
        sent.append(Sent(contact_id, enrollment_id, message))
    return sent


async def send_email(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    factory: Factory,
    email: str = "ada@example.com",
) -> Sent:
    (sent,) = await send_emails(client, tenant, settings, factory, [email])
    return sent


async def message(factory: Factory, message_id: str) -> Message:
    async with factory() as session:
        found = await session.get(Message, uuid.UUID(message_id))
        assert found is not None
        return found


async def contact_events(
    client: httpx.AsyncClient, tenant: Tenant, contact_id: str
) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/events", params={"contact_id": contact_id, "limit": 100}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data
