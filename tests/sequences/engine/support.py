"""Helpers for engine tests: templates and sequences through the API, a real arq worker in
burst mode driving the scheduler scan, and readers for the resulting rows."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.channels.models import Message
from app.config import EngineSettings, Settings
from app.core.db import transaction
from app.core.jobs import enqueue
from app.core.state import AppState
from app.sequences.models import Enrollment, EnrollmentStep
from app.worker.settings import build_worker
from tests.fixtures.tenants import Tenant

Factory = async_sessionmaker[AsyncSession]


def engine_settings(settings: Settings) -> Settings:
    """No lookahead: a test's frozen clock decides what is due, never arq's real time."""
    return settings.model_copy(update={"engine": EngineSettings(lookahead_ms=0)})


async def run_jobs(settings: Settings) -> None:
    worker = build_worker(
        engine_settings(settings), burst=True, poll_delay=0.01, handle_signals=False, cron_jobs=[]
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def scan(state: AppState, settings: Settings) -> None:
    """One scheduler tick (as the cron would run it), then every job it enqueued."""
    async with transaction(state.session_factory, state.queue) as session:
        enqueue(session, "engine_scan", job_key=(uuid.uuid4(),))
    await run_jobs(settings)


async def template(
    client: httpx.AsyncClient, tenant: Tenant, channel: str, content: dict[str, Any]
) -> str:
    response = await client.post(
        "/v1/templates",
        json={"name": f"{channel} {uuid.uuid4().hex[:6]}", "channel": channel, "content": content},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    published = await client.post(f"/v1/templates/{template_id}/publish", headers=tenant.headers)
    assert published.status_code == 201, published.text
    return template_id


async def email_template(client: httpx.AsyncClient, tenant: Tenant, subject: str) -> str:
    content = {
        "subject": subject,
        "html": "<p>Hello {{ contact.attributes.first_name | default('there') }}</p>"
        "<a href=\"{{ link('https://example.com/offer') }}\">offer</a>"
        '<a href="{{ unsubscribe_url }}">unsubscribe</a>',
        "text": "Hello {{ contact.attributes.first_name | default('there') }}",
    }
    return await template(client, tenant, "email", content)


async def published_sequence(
    client: httpx.AsyncClient, tenant: Tenant, definition: dict[str, Any]
) -> str:
    response = await client.post(
        "/v1/sequences", json={"name": "Seq", "definition": definition}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    sequence_id: str = response.json()["id"]
    published = await client.post(f"/v1/sequences/{sequence_id}/publish", headers=tenant.headers)
    assert published.status_code == 201, published.text
    return sequence_id


async def contact(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> str:
    response = await client.post("/v1/contacts", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    contact_id: str = response.json()["id"]
    return contact_id


async def enroll(
    client: httpx.AsyncClient, tenant: Tenant, sequence_id: str, contact_id: str
) -> str:
    response = await client.post(
        f"/v1/sequences/{sequence_id}/enrollments",
        json={"contact_id": contact_id},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    enrollment_id: str = response.json()["id"]
    return enrollment_id


async def event(
    client: httpx.AsyncClient, tenant: Tenant, contact_id: str, kind: str, **properties: Any
) -> None:
    body = {"contact_id": contact_id, "type": kind, "properties": properties}
    response = await client.post("/v1/events", json=body, headers=tenant.headers)
    assert response.status_code in (200, 201), response.text


async def enrollment(factory: Factory, enrollment_id: str) -> Enrollment:
    async with factory() as session:
        found = await session.get(Enrollment, uuid.UUID(enrollment_id))
        assert found is not None
        return found


async def messages(factory: Factory, enrollment_id: str) -> list[Message]:
    async with factory() as session:
        result = await session.execute(
            select(Message)
            .where(Message.enrollment_id == uuid.UUID(enrollment_id))
            .order_by(Message.created_at, Message.id)
        )
        return list(result.scalars())


async def outcomes(factory: Factory, enrollment_id: str) -> list[tuple[str | None, str]]:
    async with factory() as session:
        result = await session.execute(
            select(EnrollmentStep.step_key, EnrollmentStep.outcome)
            .where(EnrollmentStep.enrollment_id == uuid.UUID(enrollment_id))
            .order_by(EnrollmentStep.id)
        )
        return [(row[0], row[1]) for row in result]
