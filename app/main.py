"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from arq import create_pool
from arq.connections import RedisSettings
from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware

from app.approvals.router import router as approvals_router
from app.attribution.router import router as attribution_router
from app.audit.middleware import KeyUseAuditMiddleware, record_key_use
from app.audit.router import router as audit_router
from app.campaigns.router import router as campaigns_router
from app.channels.router import router as channels_router
from app.config import Settings, get_settings
from app.contacts.consent.router import router as consent_router
from app.contacts.imports.router import router as imports_router
from app.contacts.privacy.router import router as privacy_router
from app.contacts.router import router as contacts_router
from app.core import encryption
from app.core.db import create_engine, create_session_factory
from app.core.deps import SUCCESS_HOOKS
from app.core.docs import install_docs
from app.core.errors import install_error_handlers
from app.core.idempotency import IdempotencyMiddleware
from app.core.jobs import JobQueue
from app.core.locations import LocationMiddleware
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware, RequestGuardMiddleware
from app.core.openapi import build_openapi
from app.core.ratelimit import RateLimitHeadersMiddleware
from app.core.routing import install_method_routing
from app.core.state import AppState
from app.events.router import router as events_router
from app.experiments.router import router as experiments_router
from app.inbound.router import router as inbound_router
from app.metrics.router import router as metrics_router
from app.ops.router import router as ops_router
from app.reports.router import router as reports_router
from app.segments.router import router as segments_router
from app.sequences.enrollments.router import router as enrollments_router
from app.sequences.router import router as sequences_router
from app.sequences.simulation.router import router as simulation_router
from app.templates import sandbox
from app.templates.router import router as templates_router
from app.webhooks.openapi import register_webhooks
from app.webhooks.router import router as webhooks_router
from app.wiring import wire
from app.workspaces.router import router as workspaces_router

DESCRIPTION = """
Herald orchestrates campaigns: audiences, multi-step sequences, approvals, launches and their
numbers, on PostgreSQL and Redis.

**Auth**: `Authorization: Bearer hk_...`. The workspace comes from the key.
**Errors**: RFC 9457 `application/problem+json` with `type`, `detail`, field `errors` and
`request_id`. **Lists**: `limit` + `cursor`, answered with `data` + `next_cursor`.
**Writes**: send `Idempotency-Key` on POST to make retries safe.
"""

TAGS: list[dict[str, Any]] = [
    {"name": "Workspace", "description": "The tenant the API key belongs to."},
    {"name": "Members", "description": "People, their base role and reviewer roles."},
    {"name": "API keys", "description": "Credentials with scopes; admin only."},
    {"name": "Contacts", "description": "People Herald can reach, with attributes and consent."},
    {"name": "Imports", "description": "Bulk contact imports from CSV or NDJSON files."},
    {"name": "Consent", "description": "Per-channel consent with provenance, and suppressions."},
    {"name": "Privacy", "description": "Export and erasure of everything about a contact."},
    {"name": "Events", "description": "What contacts did: ingestion, dedup, listing."},
    {"name": "Segments", "description": "Audiences as rules compiled to SQL, or static lists."},
    {"name": "Templates", "description": "Message content with merge fields, versioned."},
    {"name": "Sequences", "description": "Step graphs (sends, waits, branches), versioned."},
    {"name": "Enrollments", "description": "Contacts running through a sequence version."},
    {"name": "Messages", "description": "What was sent: one row per enrollment step."},
    {"name": "Tracking", "description": "Open pixel, click redirect, one-click unsubscribe."},
    {"name": "Audit", "description": "Who did what, when: the append-only audit log."},
    {"name": "Approvals", "description": "Approval policies, review rounds and decisions."},
    {"name": "Campaigns", "description": "Plan, approve, launch and budget campaigns."},
    {
        "name": "Webhook endpoints",
        "description": "Your URLs that receive the webhook events; deliveries and replays.",
    },
    {
        "name": "Webhook events",
        "description": "The event catalogue: what Herald POSTs to webhook endpoints.",
    },
    {"name": "Inbound", "description": "Provider events (delivered, bounced, ...) posted to us."},
    {"name": "Metrics", "description": "Campaign, step and variant stats; the live stream."},
    {"name": "Experiments", "description": "A/B tests on send steps and their winners."},
    {
        "name": "Attribution",
        "description": "Conversions credited to campaign touches across campaigns.",
    },
    {
        "name": "Reports",
        "description": "Business figures: ROI, CPA, pacing, approval cycle times, launch variance.",
    },
    {"name": "Operations", "description": "Health, readiness and metrics for operators."},
]

# Routes that accept file uploads (bigger body limit, any media type).
UPLOAD_PATHS: tuple[str, ...] = (r"^/v1/contacts/imports$",)
# Routes that take non-JSON bodies within the normal limit: RFC 8058 one-click unsubscribe
# POSTs `List-Unsubscribe=One-Click` as a form.
ANY_MEDIA_PATHS: tuple[str, ...] = (r"^/v1/unsubscribe/[A-Za-z0-9_-]+$",)

# CORS (only when HERALD_HTTP__CORS_ALLOWED_ORIGINS is set). Bearer keys, no cookies: no
# credentials mode. Browsers may read the headers clients act on.
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-Id",
    "Last-Event-ID",
]
CORS_EXPOSED_HEADERS = [
    "X-Request-Id",
    "Retry-After",
    "Idempotent-Replayed",
    "Location",
    "ETag",
    "Allow",
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
]

# Key use is audited inside the request's transaction (the middleware covers the rest).
if record_key_use not in SUCCESS_HOOKS:
    SUCCESS_HOOKS.append(record_key_use)


# A request is matched against routers in this order, every route of a router before the
# next (about 0.3 ms per request to reach the last ones): the high-traffic routes come first
# (tracking pixel and clicks, event ingestion, provider events, metrics reads). No two
# routers' paths overlap, so the order changes nothing else; fixed paths
# (/v1/contacts/imports) come before parameterised ones (/v1/contacts/{id}).
ROUTERS: tuple[APIRouter, ...] = (
    channels_router,
    events_router,
    inbound_router,
    metrics_router,
    ops_router,
    workspaces_router,
    imports_router,
    consent_router,
    privacy_router,
    contacts_router,
    segments_router,
    templates_router,
    sequences_router,
    enrollments_router,
    simulation_router,
    audit_router,
    approvals_router,
    campaigns_router,
    experiments_router,
    attribution_router,
    reports_router,
    webhooks_router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    wire()
    configure_logging(settings.logging.level, settings.logging.json_output)
    encryption.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.require_database_url(), settings.db_pool_size)
        redis = await create_pool(RedisSettings.from_dsn(settings.require_redis_url()))
        http = httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)
        app.state.herald = AppState(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            redis=redis,
            queue=JobQueue(redis, settings.worker.queue_name),
            http=http,
        )
        # The start-up heap (modules, app, schemas) never becomes garbage: keep it out of
        # every cyclic-GC pass (measurably cheaper per event batch; see docs/events.md).
        gc.freeze()
        sandbox.prestart(settings)  # template sandbox processes (docs/templates.md)
        try:
            yield
        finally:
            await http.aclose()
            await redis.aclose()
            await engine.dispose()

    docs = settings.http.docs_enabled
    app = FastAPI(
        title="Herald API",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # The docs pages are ours (app/core/docs.py): every asset served offline.
        docs_url=None,
        redoc_url=None,
        # operationIds are the handler names (`list_members`), stable for generated clients.
        generate_unique_id_function=lambda route: route.name,
    )
    install_error_handlers(app)
    # Innermost: OPTIONS, the full `Allow` on 405, literal sub-paths never taken as ids.
    resources = install_method_routing(app)
    # Sees the matched route and the caller; idempotent replays never reach it.
    app.add_middleware(KeyUseAuditMiddleware)
    # Inside the idempotency middleware: a replay carries the stored Location.
    app.add_middleware(LocationMiddleware)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(
        RequestGuardMiddleware,
        max_body_bytes=settings.http.max_body_bytes,
        max_upload_bytes=settings.http.max_upload_bytes,
        upload_paths=UPLOAD_PATHS,
        any_media_paths=ANY_MEDIA_PATHS,
    )
    if settings.http.cors_allowed_origins:
        # Inside the request context (preflights get a request id and a log line), outside
        # everything that can answer an error, so browsers can read problem bodies too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http.cors_allowed_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=settings.http.cors_max_age_seconds,
        )
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    if docs:
        install_docs(app)
    resources.load(app.routes)  # every route, the docs pages included
    register_webhooks(app)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
