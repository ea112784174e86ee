"""Webhook endpoints: registration (SSRF-checked), edits, secret rotation, and the read side
of deliveries and attempts. Delivery itself lives in `dispatch/`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.service import Actor
from app.config import WebhookSettings
from app.core.clock import utcnow
from app.core.egress import DestinationRefused, GuardPolicy, check_url
from app.core.errors import FieldError, Unprocessable
from app.core.etag import check_if_match
from app.core.pagination import PageParams, PageResult
from app.core.signing import new_secret
from app.outbox.emit import enqueue_delivery
from app.outbox.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.webhooks.repository import (
    AttemptRepository,
    DeliveryFilters,
    DeliveryRepository,
    EndpointRepository,
    EventRepository,
)
from app.webhooks.schemas import EndpointCreate, EndpointUpdate

_EDITABLE = ("url", "description", "event_types", "enabled", "rate_limit_per_second")


def editable_state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {name: getattr(endpoint, name) for name in _EDITABLE} | {
        "event_types": list(endpoint.event_types)
    }


async def _check_destination(url: str, settings: WebhookSettings) -> None:
    try:
        await check_url(url, GuardPolicy.from_settings(settings))
    except DestinationRefused as refused:
        raise Unprocessable(
            f"The URL cannot be used: {refused}.",
            errors=[
                FieldError(
                    pointer="/url", location="body", message=str(refused), code="url_refused"
                )
            ],
        ) from refused


async def create_endpoint(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    body: EndpointCreate,
    settings: WebhookSettings,
    actor: Actor,
) -> WebhookEndpoint:
    await _check_destination(body.url, settings)
    now = utcnow()
    endpoint = EndpointRepository(session, workspace_id).add(
        WebhookEndpoint(
            url=body.url,
            description=body.description,
            event_types=sorted(set(body.event_types)),
            secret=new_secret(),
            enabled=body.enabled,
            disabled_at=None if body.enabled else now,
            disabled_reason=None if body.enabled else "Created disabled.",
            rate_limit_per_second=body.rate_limit_per_second,
            version=1,
        )
    )
    await session.flush()
    await audit.record(
        session,
        workspace_id,
        actor,
        "webhook_endpoint.created",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        data={"url": endpoint.url, "event_types": endpoint.event_types},
    )
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    settings: WebhookSettings,
    *,
    if_match: str | None,
    actor: Actor,
) -> WebhookEndpoint:
    """Apply an edit; `null` clears `description` / `rate_limit_per_second` only."""
    endpoint = await EndpointRepository(session, workspace_id).locked_or_404(endpoint_id)
    check_if_match(if_match, endpoint.id, endpoint.version)
    fields = body.model_fields_set
    for required in ("url", "event_types", "enabled"):
        if required in fields and getattr(body, required) is None:
            raise Unprocessable(
                f"`{required}` cannot be null.",
                errors=[
                    FieldError(
                        pointer=f"/{required}",
                        location="body",
                        message="cannot be null",
                        code="null_not_allowed",
                    )
                ],
            )
    before = editable_state(endpoint)
    if "url" in fields and body.url != endpoint.url:
        await _check_destination(str(body.url), settings)
        endpoint.url = str(body.url)
    if "description" in fields:
        endpoint.description = body.description
    if "event_types" in fields and body.event_types is not None:
        endpoint.event_types = sorted(set(body.event_types))
    if "rate_limit_per_second" in fields:
        endpoint.rate_limit_per_second = body.rate_limit_per_second
    if "enabled" in fields and body.enabled is not None:
        _set_enabled(endpoint, body.enabled, body.disabled_reason)
    changes = audit.diff(before, editable_state(endpoint))
    if not changes:
        return endpoint
    endpoint.version += 1
    await audit.record(
        session,
        workspace_id,
        actor,
        "webhook_endpoint.updated",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        changes=changes,
    )
    if endpoint.enabled and not before["enabled"]:
        # Deliveries that waited while it was disabled go out now.
        enqueue_delivery(session, endpoint.id)
    return endpoint


def _set_enabled(endpoint: WebhookEndpoint, enabled: bool, reason: str | None) -> None:
    if enabled == endpoint.enabled:
        return
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        endpoint.failing_since = None  # a fresh start: the 5-day clock restarts
    else:
        endpoint.disabled_at = utcnow()
        endpoint.disabled_reason = reason or "Disabled by API."


async def rotate_secret(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    overlap_seconds: int,
    *,
    if_match: str | None,
    actor: Actor,
) -> WebhookEndpoint:
    """A new current secret; the old one keeps signing (second signature) for the overlap."""
    endpoint = await EndpointRepository(session, workspace_id).locked_or_404(endpoint_id)
    check_if_match(if_match, endpoint.id, endpoint.version)
    if overlap_seconds > 0:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=overlap_seconds)
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = new_secret()
    endpoint.version += 1
    await audit.record(
        session,
        workspace_id,
        actor,
        "webhook_endpoint.secret_rotated",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        data={"overlap_seconds": overlap_seconds},
    )
    return endpoint


async def delete_endpoint(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID, actor: Actor
) -> None:
    """Deletes the endpoint with its deliveries and attempts (the events stay for others)."""
    endpoint = await EndpointRepository(session, workspace_id).locked_or_404(endpoint_id)
    await audit.record(
        session,
        workspace_id,
        actor,
        "webhook_endpoint.deleted",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        data={"url": endpoint.url},
    )
    await session.delete(endpoint)


async def list_endpoints(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams
) -> PageResult[WebhookEndpoint]:
    return await EndpointRepository(session, workspace_id).page(params)


async def get_endpoint(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    return await EndpointRepository(session, workspace_id).get_or_404(endpoint_id)


async def list_deliveries(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    params: PageParams,
    filters: DeliveryFilters,
) -> PageResult[WebhookDelivery]:
    await get_endpoint(session, workspace_id, endpoint_id)
    return await DeliveryRepository(session, workspace_id).of_endpoint(endpoint_id, params, filters)


async def get_delivery(
    session: AsyncSession, workspace_id: uuid.UUID, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, WebhookEvent]:
    delivery = await DeliveryRepository(session, workspace_id).get_or_404(delivery_id)
    event = await EventRepository(session, workspace_id).get_or_404(delivery.event_id)
    return delivery, event


async def list_delivery_attempts(
    session: AsyncSession, workspace_id: uuid.UUID, delivery_id: uuid.UUID, params: PageParams
) -> PageResult[WebhookAttempt]:
    await DeliveryRepository(session, workspace_id).get_or_404(delivery_id)
    return await AttemptRepository(session, workspace_id).of_delivery(delivery_id, params)


async def list_endpoint_attempts(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID, params: PageParams
) -> PageResult[WebhookAttempt]:
    await get_endpoint(session, workspace_id, endpoint_id)
    return await AttemptRepository(session, workspace_id).of_endpoint(endpoint_id, params)
