"""Webhook endpoints, their deliveries and attempts (see docs/webhooks.md)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status

from app.audit.service import Actor
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.etag import IfMatch, make_etag, responses_with_etag, set_etag
from app.core.idempotency import shown_once
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page
from app.core.state import app_state
from app.outbox.catalogue import CATALOGUE, EXAMPLE_TIME, envelope
from app.outbox.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks import service
from app.webhooks.dispatch import service as dispatch
from app.webhooks.repository import DeliveryFilters
from app.webhooks.schemas import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryStatus,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventTypeList,
    EventTypeOut,
    ReplayFailed,
    ReplayResult,
    RotateSecret,
    TestSend,
)

router = APIRouter(prefix="/v1", tags=["Webhook endpoints"])
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("webhooks", "read")]
Writer = Annotated[Principal, Caller("webhooks", "write")]


def _etag_responses(code: int, *errors: int) -> dict[int | str, dict[str, Any]]:
    return responses_with_etag("webhook endpoint", code, *errors)


def _out(endpoint: WebhookEndpoint, response: Response | None = None) -> EndpointOut:
    if response is not None:
        set_etag(response, endpoint.id, endpoint.version)
    return EndpointOut.model_validate(
        {
            **{
                name: getattr(endpoint, name) for name in EndpointOut.model_fields if name != "etag"
            },
            "etag": make_etag(endpoint.id, endpoint.version),
        }
    )


def _with_secret(endpoint: WebhookEndpoint, response: Response) -> EndpointWithSecret:
    shown_once(response)
    return EndpointWithSecret(**_out(endpoint, response).model_dump(), secret=endpoint.secret)


def _delivery(delivery: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut.model_validate(delivery)


def _attempt(attempt: WebhookAttempt) -> AttemptOut:
    return AttemptOut.model_validate(attempt)


@router.get(
    "/webhook-event-types",
    summary="List webhook event types",
    description=(
        "The event catalogue: every type Herald emits, its payload version, what causes it and "
        "an example envelope. The same schemas are in this document's `webhooks` section."
    ),
    response_model=EventTypeList,
    responses=problem_responses(*COMMON_ERRORS),
)
async def list_event_types(principal: Reader) -> EventTypeList:
    return EventTypeList(
        data=[
            EventTypeOut(
                type=name,
                version=model.VERSION,
                summary=model.SUMMARY,
                description=model.DESCRIPTION,
                example=envelope(model.model_validate(model.EXAMPLE), EXAMPLE_TIME),
            )
            for name, model in sorted(CATALOGUE.items())
        ]
    )


@router.post(
    "/webhook-endpoints",
    summary="Register a webhook endpoint",
    description=(
        "A URL to receive the events its `event_types` select. The URL must be http(s) and "
        "resolve to public addresses only (422 otherwise; see docs/ssrf.md). The response "
        "carries the signing `secret` (`whsec_...`), shown only here and on rotation."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointWithSecret,
    responses=_etag_responses(201, 422),
)
async def create_endpoint(
    body: EndpointCreate, session: Session, principal: Writer, request: Request, response: Response
) -> EndpointWithSecret:
    endpoint = await service.create_endpoint(
        session,
        principal.workspace_id,
        body,
        app_state(request).settings.webhooks,
        Actor.of(principal),
    )
    return _with_secret(endpoint, response)


@router.get(
    "/webhook-endpoints",
    summary="List webhook endpoints",
    description="The workspace's endpoints, newest first (secrets are never listed).",
    response_model=Page[EndpointOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_endpoints(session: Session, principal: Reader, paging: Paging) -> Page[EndpointOut]:
    page = await service.list_endpoints(session, principal.workspace_id, paging)
    return Page[EndpointOut](data=[_out(e) for e in page.items], next_cursor=page.next_cursor)


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    summary="Get a webhook endpoint",
    description="One endpoint with its state (enabled, failure streak) and `ETag`.",
    response_model=EndpointOut,
    responses=_etag_responses(200, 404, 422),
)
async def get_endpoint(
    endpoint_id: uuid.UUID, session: Session, principal: Reader, response: Response
) -> EndpointOut:
    endpoint = await service.get_endpoint(session, principal.workspace_id, endpoint_id)
    return _out(endpoint, response)


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    summary="Edit a webhook endpoint",
    description=(
        "Change the URL (checked again), description, filters, rate limit, or `enabled`. "
        "Disabling keeps pending deliveries waiting; enabling sends them and restarts the "
        "failure streak. Send `If-Match` to get 412 on a stale edit."
    ),
    response_model=EndpointOut,
    responses=_etag_responses(200, 404, 412, 422),
)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    *,
    body: EndpointUpdate,
    session: Session,
    principal: Writer,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> EndpointOut:
    endpoint = await service.update_endpoint(
        session,
        principal.workspace_id,
        endpoint_id,
        body,
        app_state(request).settings.webhooks,
        if_match=if_match,
        actor=Actor.of(principal),
    )
    return _out(endpoint, response)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    summary="Delete a webhook endpoint",
    description="Removes the endpoint with its pending deliveries and its attempt log.",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def delete_endpoint(endpoint_id: uuid.UUID, session: Session, principal: Writer) -> Response:
    await service.delete_endpoint(session, principal.workspace_id, endpoint_id, Actor.of(principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    summary="Rotate an endpoint's secret",
    description=(
        "A new `secret`, shown once. For `overlap_seconds` (default one day, at most seven) "
        "every delivery carries two signatures, one per secret, so receivers can switch "
        "without losing events."
    ),
    response_model=EndpointWithSecret,
    responses=_etag_responses(200, 404, 412, 422),
)
async def rotate_secret(
    endpoint_id: uuid.UUID,
    *,
    session: Session,
    principal: Writer,
    response: Response,
    body: Annotated[RotateSecret | None, Body(examples=[{"overlap_seconds": 3600}])] = None,
    if_match: IfMatch = None,
) -> EndpointWithSecret:
    overlap = (body or RotateSecret()).overlap_seconds
    endpoint = await service.rotate_secret(
        session,
        principal.workspace_id,
        endpoint_id,
        overlap,
        if_match=if_match,
        actor=Actor.of(principal),
    )
    return _with_secret(endpoint, response)


@router.post(
    "/webhook-endpoints/{endpoint_id}/test",
    summary="Send a test event",
    description=(
        "Sends a `webhook_endpoint.test` event to this endpoint now (even when disabled) and "
        "answers with the attempt: outcome, status, latency and response excerpt. Not retried."
    ),
    response_model=AttemptOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def send_test(
    endpoint_id: uuid.UUID,
    *,
    session: Session,
    principal: Writer,
    request: Request,
    body: Annotated[TestSend | None, Body(examples=[{"message": "Ping"}])] = None,
) -> AttemptOut:
    state = app_state(request)
    attempt = await dispatch.send_test(
        session,
        principal.workspace_id,
        endpoint_id,
        state.http,
        state.settings,
        (body or TestSend()).message,
    )
    return _attempt(attempt)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    summary="List an endpoint's deliveries",
    description="Deliveries to this endpoint, newest first, filterable by status and type.",
    response_model=Page[DeliveryOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_deliveries(
    endpoint_id: uuid.UUID,
    *,
    session: Session,
    principal: Reader,
    paging: Paging,
    status: Annotated[DeliveryStatus | None, Query(description="Only this status.")] = None,
    event_type: Annotated[
        str | None, Query(max_length=100, description="Only this event type.")
    ] = None,
) -> Page[DeliveryOut]:
    page = await service.list_deliveries(
        session, principal.workspace_id, endpoint_id, paging, DeliveryFilters(status, event_type)
    )
    return Page[DeliveryOut](data=[_delivery(d) for d in page.items], next_cursor=page.next_cursor)


@router.get(
    "/webhook-endpoints/{endpoint_id}/attempts",
    summary="List an endpoint's attempts",
    description=(
        "The attempt log: every HTTP attempt (or refusal) with time, status, latency and the "
        "first 1 KiB of the response, newest first."
    ),
    response_model=Page[AttemptOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_endpoint_attempts(
    endpoint_id: uuid.UUID, session: Session, principal: Reader, paging: Paging
) -> Page[AttemptOut]:
    page = await service.list_endpoint_attempts(
        session, principal.workspace_id, endpoint_id, paging
    )
    return Page[AttemptOut](data=[_attempt(a) for a in page.items], next_cursor=page.next_cursor)


@router.post(
    "/webhook-endpoints/{endpoint_id}/replay",
    summary="Replay failed deliveries",
    description=(
        "Queues again every delivery of this endpoint that failed at or after `since`, with "
        "its original `webhook-id`. Answers how many were queued."
    ),
    response_model=ReplayResult,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def replay_failed(
    endpoint_id: uuid.UUID, body: ReplayFailed, session: Session, principal: Writer
) -> ReplayResult:
    queued = await dispatch.replay_failed(session, principal.workspace_id, endpoint_id, body.since)
    return ReplayResult(queued=queued)


@router.get(
    "/webhook-deliveries/{delivery_id}",
    summary="Get a delivery",
    description="One delivery with the exact envelope it carries.",
    response_model=DeliveryDetail,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_delivery(
    delivery_id: uuid.UUID, session: Session, principal: Reader
) -> DeliveryDetail:
    delivery, event = await service.get_delivery(session, principal.workspace_id, delivery_id)
    return DeliveryDetail(**_delivery(delivery).model_dump(), payload=event.payload)


@router.get(
    "/webhook-deliveries/{delivery_id}/attempts",
    summary="List a delivery's attempts",
    description="Every attempt of this delivery, newest first.",
    response_model=Page[AttemptOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_delivery_attempts(
    delivery_id: uuid.UUID, session: Session, principal: Reader, paging: Paging
) -> Page[AttemptOut]:
    page = await service.list_delivery_attempts(
        session, principal.workspace_id, delivery_id, paging
    )
    return Page[AttemptOut](data=[_attempt(a) for a in page.items], next_cursor=page.next_cursor)


@router.post(
    "/webhook-deliveries/{delivery_id}/replay",
    summary="Replay a delivery",
    description=(
        "Queues this delivery again now, whatever its state, with its original `webhook-id` "
        "(receivers deduplicate on it)."
    ),
    response_model=DeliveryOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def replay_delivery(
    delivery_id: uuid.UUID, session: Session, principal: Writer
) -> DeliveryOut:
    delivery = await dispatch.replay_delivery(session, principal.workspace_id, delivery_id)
    return _delivery(delivery)
