"""Privacy requests cover sequences: export lists enrollments (with timelines) and messages;
erasure exits enrollments and removes addresses and rendered content from messages."""

from __future__ import annotations

import json
import uuid

import httpx
from sqlalchemy import select, text

from app.channels.models import Message
from app.config import Settings
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant


async def test_export_and_erasure_reach_enrollments_and_messages(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    welcome = await factories.email_template(client, tenant, "Hi {{ contact.email }}")
    steps = [
        {"key": "hello", "type": "send", "channel": "email", "template_id": welcome},
        {"key": "nap", "type": "wait", "duration": "P1D"},
    ]
    sequence_id = await factories.published_sequence(client, tenant, {"steps": steps})
    contact_id = await factories.contact(client, tenant, email="private@example.com")
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    await harness.run_jobs(settings)

    exported = await client.get(f"/v1/contacts/{contact_id}/export", headers=tenant.headers)
    assert exported.status_code == 200, exported.text
    sections = exported.json()["sections"]
    (enrollment,) = sections["enrollments"]
    assert enrollment["id"] == enrollment_id
    assert [step["outcome"] for step in enrollment["timeline"]] == ["sent", "waiting"]
    (message,) = sections["messages"]
    assert (message["recipient"], message["content"]["subject"]) == (
        "private@example.com",
        "Hi private@example.com",
    )

    erased = await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    row = await factories.enrollment(session_factory, enrollment_id)
    assert (row.state, row.exit_reason) == ("exited", "contact_erased")
    async with session_factory() as session:
        stored = (
            await session.execute(
                select(Message).where(Message.enrollment_id == uuid.UUID(enrollment_id))
            )
        ).scalar_one()
        assert (stored.recipient, stored.content, stored.status) == (None, {}, "sent")
        for table in ("messages", "enrollments", "enrollment_steps"):
            rows = await session.execute(text(f"SELECT to_jsonb(t) FROM {table} t"))
            assert "private@example.com" not in json.dumps([r[0] for r in rows])
