"""Webhook-step URLs meet the SSRF guard when a draft is saved and when it is published, not
only at send (regression: a webhook step to http://169.254.169.254/ published)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import update

from app.config import Settings, WebhookSettings
from app.core.db import transaction
from app.main import create_app
from app.sequences.models import Sequence
from tests.fixtures.clients import client_for
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

METADATA = "http://169.254.169.254/latest/meta-data/"


def hook(url: str, key: str = "crm") -> dict[str, Any]:
    return {"key": key, "type": "webhook", "url": url}


def definition(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"steps": list(steps)}


def refused_at(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return [(error["pointer"], error["code"]) for error in response.json()["errors"]]


async def test_refused_urls_are_422_at_save_naming_the_step(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = {
        "name": "Leak",
        "definition": definition(hook("https://ok.example/x", "a"), hook(METADATA, "b")),
    }
    created = await client.post("/v1/sequences", json=body, headers=tenant.headers)
    assert refused_at(created) == [("/definition/steps/1/url", "url_refused")]
    [error] = created.json()["errors"]
    assert "'b'" in error["message"]
    assert "169.254.169.254" in error["message"] or "link-local" in error["message"]

    fine = await client.post(
        "/v1/sequences",
        json={"name": "Fine", "definition": definition(hook("http://127.0.0.1:9/hook"))},
        headers=tenant.headers,
    )
    assert fine.status_code == 201, fine.text  # the tests' settings allow loopback
    for url in (METADATA, "http://[::ffff:169.254.169.254]/", "http://0251.0376.0251.0376/"):
        patched = await client.patch(
            f"/v1/sequences/{fine.json()['id']}",
            json={"definition": definition(hook(url))},
            headers=tenant.headers,
        )
        assert refused_at(patched) == [("/definition/steps/0/url", "url_refused")], url
    # A name that does not resolve (yet) is no address to refuse: the send-time guard
    # checks whatever it resolves to then.
    unresolved = await client.patch(
        f"/v1/sequences/{fine.json()['id']}",
        json={"definition": definition(hook("https://crm.invalid/hook"))},
        headers=tenant.headers,
    )
    assert unresolved.status_code == 200, unresolved.text


async def test_a_stored_draft_with_a_refused_url_does_not_publish(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await client.post(
        "/v1/sequences",
        json={"name": "Old", "definition": definition(hook("http://127.0.0.1:9/hook"))},
        headers=tenant.headers,
    )
    sequence_id = created.json()["id"]
    # A draft saved before the guard ran at save time.
    async with transaction(session_factory) as session:
        await session.execute(
            update(Sequence)
            .where(Sequence.id == uuid.UUID(sequence_id))
            .values(definition=definition(hook(METADATA)))
        )
    validation = await client.get(f"/v1/sequences/{sequence_id}/validation", headers=tenant.headers)
    assert validation.json()["valid"] is False
    assert [(e["pointer"], e["code"]) for e in validation.json()["errors"]] == [
        ("/definition/steps/0/url", "url_refused")
    ]
    published = await client.post(f"/v1/sequences/{sequence_id}/publish", headers=tenant.headers)
    assert refused_at(published) == [("/definition/steps/0/url", "url_refused")]
    versions = await client.get(f"/v1/sequences/{sequence_id}/versions", headers=tenant.headers)
    assert versions.json()["data"] == []


async def test_production_settings_refuse_loopback_too(settings: Settings, tenant: Tenant) -> None:
    production = settings.model_copy(update={"webhooks": WebhookSettings()})
    app = create_app(production)
    async with app.router.lifespan_context(app), client_for(app) as client:
        created = await client.post(
            "/v1/sequences",
            json={"name": "Local", "definition": definition(hook("http://127.0.0.1:9/hook"))},
            headers=tenant.headers,
        )
    assert refused_at(created) == [("/definition/steps/0/url", "url_refused")]
