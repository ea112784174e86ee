"""Webhook endpoints, their deliveries and attempts (see docs/webhooks.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["Webhooks"])
