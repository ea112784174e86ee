"""Delivery of webhook events: per-endpoint jobs, attempts, retries, replay, test sends.

CONTRACT (implemented by the dispatch helper; signatures fixed, bodies theirs).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.webhooks.models import WebhookAttempt, WebhookDelivery
from app.worker.context import WorkerContext


async def replay_delivery(
    session: AsyncSession, workspace_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Queue one delivery again now (same `webhook-id`), whatever its state; 404 if not the
    workspace's. Enqueues the endpoint's job after commit."""
    raise NotImplementedError


async def replay_failed(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID, since: datetime
) -> int:
    """Queue again every failed delivery of the endpoint completed at or after `since`;
    returns how many. 404 if the endpoint is not the workspace's."""
    raise NotImplementedError


async def send_test(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    http: httpx.AsyncClient,
    settings: Settings,
    message: str,
) -> WebhookAttempt:
    """Emit a `webhook_endpoint.test` event to this endpoint only and attempt it at once
    (inline, recorded like any attempt; no retries). 404 if not the workspace's."""
    raise NotImplementedError


async def deliver_endpoint(ctx: WorkerContext, endpoint_id: uuid.UUID) -> dict[str, int]:
    """The body of the `deliver_webhooks` job: work the endpoint's due deliveries."""
    raise NotImplementedError


async def dispatch_due(ctx: WorkerContext) -> int:
    """Cron: enqueue `deliver_webhooks` for every endpoint with due, unleased work."""
    raise NotImplementedError
