"""The webhook endpoints API: registration (with the SSRF check), filters, edits with ETags,
secret rotation, the catalogue, the read side of deliveries, and tenant isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import AuditEvent
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.state import AppState
from app.outbox.catalogue import CATALOGUE, CampaignLaunched, EventData
from app.outbox.emit import emit
from app.outbox.models import WebhookDelivery, WebhookEndpoint
from tests.fixtures.tenants import Tenant

Factory = async_sessionmaker[AsyncSession]
RECEIVER = "http://127.0.0.1:9/hooks"  # loopback is allowed in tests; nothing is sent here


async def register(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhook-endpoints", json={"url": RECEIVER, **body}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def emit_launch(state: AppState, tenant: Tenant, enrolled: int = 3) -> int:
    data = CampaignLaunched(
        campaign_id=uuid.uuid4(), enrolled=enrolled, planned_at=None, launched_at=utcnow()
    )
    async with transaction(state.session_factory, state.queue) as session:
        return await emit(session, tenant.workspace_id, data)


async def test_register_shows_the_secret_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await register(client, tenant, description="CRM", event_types=["campaign.*"])
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["campaign.*"]
    assert created["enabled"] is True
    fetched = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert "secret" not in fetched.json()
    assert fetched.headers["etag"] == created["etag"]
    listed = await client.get("/v1/webhook-endpoints", headers=tenant.headers)
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]]
    assert "secret" not in listed.json()["data"][0]


async def test_default_filter_is_everything(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await register(client, tenant))["event_types"] == ["*"]


@pytest.mark.parametrize(
    ("filters", "pointer"),
    [
        (["campaign.nope"], "/event_types/0"),
        (["message.sent", "nope.*"], "/event_types/1"),
        ([], "/event_types"),
    ],
)
async def test_unknown_filters_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, filters: list[str], pointer: str
) -> None:
    response = await client.post(
        "/v1/webhook-endpoints",
        json={"url": RECEIVER, "event_types": filters},
        headers=tenant.headers,
    )
    assert response.status_code == 422, response.text
    assert pointer in [e["pointer"] for e in response.json()["errors"]]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/hook",
        "http://[::ffff:10.0.0.8]/hook",
        "not a url",
    ],
)
async def test_unsafe_urls_are_refused_at_registration(
    client: httpx.AsyncClient, tenant: Tenant, url: str
) -> None:
    response = await client.post("/v1/webhook-endpoints", json={"url": url}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == ["/url"]
    total = await client.get("/v1/webhook-endpoints", headers=tenant.headers)
    assert total.json()["data"] == []


async def test_edit_with_etags_and_the_failure_streak(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await register(client, tenant)
    path = f"/v1/webhook-endpoints/{created['id']}"
    disabled = await client.patch(
        path,
        json={"enabled": False, "disabled_reason": "maintenance"},
        headers={**tenant.headers, "If-Match": created["etag"]},
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_reason"] == "maintenance"
    assert disabled.json()["disabled_at"] is not None
    stale = await client.patch(
        path, json={"enabled": True}, headers={**tenant.headers, "If-Match": created["etag"]}
    )
    assert stale.status_code == 412
    async with session_factory() as session, session.begin():
        endpoint = await session.get(WebhookEndpoint, uuid.UUID(created["id"]))
        assert endpoint is not None
        endpoint.failing_since = utcnow()
    enabled = await client.patch(path, json={"enabled": True}, headers=tenant.headers)
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_reason"] is None
    assert enabled.json()["failing_since"] is None
    null_url = await client.patch(path, json={"url": None}, headers=tenant.headers)
    assert null_url.status_code == 422
    cleared = await client.patch(
        path, json={"rate_limit_per_second": 5, "description": None}, headers=tenant.headers
    )
    assert cleared.json()["rate_limit_per_second"] == 5
    refused = await client.patch(path, json={"url": "http://192.168.1.1/"}, headers=tenant.headers)
    assert refused.status_code == 422
    assert (await client.get(path, headers=tenant.headers)).json()["url"] == RECEIVER


async def test_rotation_keeps_the_previous_secret_for_the_overlap(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await register(client, tenant)
    rotated = await client.post(
        f"/v1/webhook-endpoints/{created['id']}/rotate-secret",
        json={"overlap_seconds": 3600},
        headers=tenant.headers,
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    immediate = await client.post(
        f"/v1/webhook-endpoints/{created['id']}/rotate-secret",
        json={"overlap_seconds": 0},
        headers=tenant.headers,
    )
    assert immediate.json()["previous_secret_expires_at"] is None


async def test_changes_are_audited(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    created = await register(client, tenant)
    await client.patch(
        f"/v1/webhook-endpoints/{created['id']}",
        json={"event_types": ["message.*"]},
        headers=tenant.headers,
    )
    await client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=tenant.headers)
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.changes)
                .where(AuditEvent.action.like("webhook_endpoint.%"))
                .order_by(AuditEvent.id)
            )
        ).all()
    assert [action for action, _ in rows] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
    ]
    assert rows[1][1] == {"event_types": {"before": ["*"], "after": ["message.*"]}}


async def test_catalogue_lists_every_type_with_a_valid_example(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get("/v1/webhook-event-types", headers=tenant.headers)
    assert response.status_code == 200
    listed = {item["type"]: item for item in response.json()["data"]}
    assert set(listed) == set(CATALOGUE)
    for name, item in listed.items():
        model: type[EventData] = CATALOGUE[name]
        assert item["example"]["type"] == name
        assert item["example"]["version"] == model.VERSION
        model.model_validate(item["example"]["data"])


async def test_an_emitted_event_is_listed_with_its_envelope(
    client: httpx.AsyncClient, tenant: Tenant, state: AppState
) -> None:
    wanted = await register(client, tenant, event_types=["campaign.launched"])
    await register(client, tenant, event_types=["message.*"])
    assert await emit_launch(state, tenant, enrolled=7) == 1
    deliveries = await client.get(
        f"/v1/webhook-endpoints/{wanted['id']}/deliveries", headers=tenant.headers
    )
    assert deliveries.status_code == 200
    [delivery] = deliveries.json()["data"]
    assert delivery["status"] == "pending"
    assert delivery["event_type"] == "campaign.launched"
    detail = await client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=tenant.headers)
    payload = detail.json()["payload"]
    assert payload["type"] == "campaign.launched"
    assert payload["version"] == 1
    assert payload["data"]["enrolled"] == 7
    filtered = await client.get(
        f"/v1/webhook-endpoints/{wanted['id']}/deliveries?status=failed", headers=tenant.headers
    )
    assert filtered.json()["data"] == []
    attempts = await client.get(
        f"/v1/webhook-deliveries/{delivery['id']}/attempts", headers=tenant.headers
    )
    assert attempts.json()["data"] == []


async def test_disabled_endpoints_and_other_workspaces_get_nothing(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, state: AppState
) -> None:
    created = await register(client, tenant, enabled=False)
    assert created["enabled"] is False
    await register(client, other_tenant)
    assert await emit_launch(state, tenant) == 0
    async with state.session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert count == 0


async def test_other_workspaces_ids_are_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, state: AppState
) -> None:
    created = await register(client, tenant)
    await emit_launch(state, tenant)
    deliveries = await client.get(
        f"/v1/webhook-endpoints/{created['id']}/deliveries", headers=tenant.headers
    )
    delivery_id = deliveries.json()["data"][0]["id"]
    endpoint = f"/v1/webhook-endpoints/{created['id']}"
    delivery = f"/v1/webhook-deliveries/{delivery_id}"
    foreign = other_tenant.headers
    calls = [
        ("GET", endpoint, None),
        ("PATCH", endpoint, {"enabled": False}),
        ("DELETE", endpoint, None),
        ("POST", f"{endpoint}/rotate-secret", {}),
        ("POST", f"{endpoint}/test", {}),
        ("GET", f"{endpoint}/deliveries", None),
        ("GET", f"{endpoint}/attempts", None),
        ("POST", f"{endpoint}/replay", {"since": "2026-01-01T00:00:00Z"}),
        ("GET", delivery, None),
        ("GET", f"{delivery}/attempts", None),
        ("POST", f"{delivery}/replay", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=foreign)
        assert response.status_code == 404, (method, path, response.text)
    # ... and the owner's resources are untouched.
    mine = await client.get(endpoint, headers=tenant.headers)
    assert mine.json()["enabled"] is True
    assert mine.json()["version"] == 1
    listed = await client.get("/v1/webhook-endpoints", headers=foreign)
    assert listed.json()["data"] == []
