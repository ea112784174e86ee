"""Liveness, readiness and Prometheus metrics (unauthenticated, for orchestrators)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from app.core.db import ping
from app.core.errors import ServiceUnavailable
from app.core.observability import refresh_job_metrics
from app.core.openapi import problem_responses
from app.core.outages import RETRY_AFTER_SECONDS
from app.core.state import app_state

router = APIRouter(tags=["Operations"])

CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}]
        }
    )

    status: str
    checks: dict[str, str] = {}


@router.get(
    "/healthz",
    summary="Liveness",
    description="Answers 200 while the process serves HTTP. Checks no dependency.",
    response_model=Health,
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when PostgreSQL and Redis both answer within 2 s; 503 naming the failing one.",
    response_model=Health,
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Health:
    state = app_state(request)
    checks = {"postgres": ping(state.engine), "redis": state.redis.ping()}
    results = await asyncio.gather(
        *(asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS) for check in checks.values()),
        return_exceptions=True,
    )
    failing = [
        name
        for name, result in zip(checks, results, strict=True)
        if isinstance(result, BaseException)
    ]
    if failing:
        raise ServiceUnavailable(
            f"Not ready: {', '.join(failing)} unreachable.",
            extra={"checks": {name: ("down" if name in failing else "ok") for name in checks}},
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return Health(status="ok", checks=dict.fromkeys(checks, "ok"))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "Requests by route and status, latency histogram (this process), queue depth and "
        "finished jobs by function and outcome (all workers, read from Redis)."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {
                CONTENT_TYPE_LATEST.split(";")[0]: {
                    "schema": {"type": "string"},
                    "example": "herald_queue_depth 0.0\n",
                }
            },
        }
    },
)
async def metrics(request: Request) -> Response:
    state = app_state(request)
    # Serve this process's metrics even when Redis is down.
    with contextlib.suppress(OSError, ConnectionError, TimeoutError):
        await refresh_job_metrics(state.redis, state.settings.worker.queue_name)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
