"""Inbound provider events: `POST /v1/inbound/{provider}` (see docs/inbound.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["Inbound"])
