"""Shared builders for the sequences API tests: templates to reference, sequences to publish."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.factories import create_sequence
from tests.fixtures.tenants import Tenant

__all__ = ["create_sequence", "problems", "publish_template", "template", "welcome"]

EMAIL = {"subject": "Hi {{ contact.email }}", "text": "Hello"}
CONTENT: dict[str, dict[str, Any]] = {
    "email": EMAIL,
    "sms": {"text": "Hi"},
    "webhook": {"payload": {"email": "{{ contact.email }}"}},
}


async def template(
    client: httpx.AsyncClient, tenant: Tenant, channel: str = "email", *, publish: bool = True
) -> str:
    """A template id (published unless told otherwise)."""
    body = {"name": f"{channel} template", "channel": channel, "content": CONTENT[channel]}
    created = await client.post("/v1/templates", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    template_id: str = created.json()["id"]
    if publish:
        await publish_template(client, tenant, template_id)
    return template_id


async def publish_template(client: httpx.AsyncClient, tenant: Tenant, template_id: str) -> str:
    """Publish the template's draft; the new version's number."""
    published = await client.post(f"/v1/templates/{template_id}/publish", headers=tenant.headers)
    assert published.status_code == 201, published.text
    return str(published.json()["number"])


def welcome(welcome_id: str, follow_up_id: str) -> dict[str, Any]:
    """welcome -> wait_for_event email.replied P3D -> follow_up (or exit on a reply)."""
    return {
        "steps": [
            {"key": "welcome", "type": "send", "channel": "email", "template_id": welcome_id},
            {
                "key": "await_reply",
                "type": "wait_for_event",
                "event_type": "email.replied",
                "timeout": "P3D",
                "on_event": "done",
                "on_timeout": "follow_up",
            },
            {"key": "follow_up", "type": "send", "channel": "email", "template_id": follow_up_id},
            {"key": "done", "type": "exit"},
        ],
        "settings": {"exit_rules": [{"on": "replied"}], "default_timezone": "Europe/Paris"},
    }


async def problems(
    client: httpx.AsyncClient, tenant: Tenant, definition: dict[str, Any]
) -> set[tuple[str, str]]:
    """The draft's validation errors as (pointer, code) pairs."""
    sequence = await create_sequence(client, tenant, definition)
    response = await client.get(
        f"/v1/sequences/{sequence['id']}/validation", headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["valid"] is (not report["errors"])
    return {(error["pointer"], error["code"]) for error in report["errors"]}
