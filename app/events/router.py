from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic_core import to_json

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.grammar import QueryInstant, after, before
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page
from app.events import service
from app.events.schemas import (
    EventBatchIn,
    EventBatchOut,
    EventFilters,
    EventIn,
    EventOut,
    EventType,
)

router = APIRouter(prefix="/v1", tags=["Events"])
Paging = Annotated[PageParams, Depends(page_params)]


def event_filters(
    contact_id: Annotated[uuid.UUID | None, Query(description="Only this contact.")] = None,
    type: Annotated[EventType | None, Query(description="Only this event type.")] = None,
    occurred_after: Annotated[QueryInstant | None, after("occurred_at")] = None,
    occurred_before: Annotated[QueryInstant | None, before("occurred_at")] = None,
) -> EventFilters:
    return EventFilters(contact_id, type, occurred_after, occurred_before)


_RULES = (
    "Name the contact with exactly one of `contact_id`, `external_id` or `email`; an unknown "
    "`external_id` / `email` creates the contact unless the workspace setting "
    "`events.unknown_contacts` is `reject` (an unknown `contact_id` is always rejected). "
    "`occurred_at` defaults to now and may be at most 5 minutes ahead. `email.*` types are "
    "reserved for Herald (need an `admin` or `events:admin` key). A repeated `event_id` "
    "returns the original event and stores nothing."
)


@router.post(
    "/events",
    summary="Record an event",
    description=(
        "Record one thing a contact did. Answers 201 with the new event, or 200 with the "
        "original when `event_id` was already recorded. " + _RULES
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=EventOut,
    responses={
        200: {"description": "A resend: the original event (nothing new was stored)."},
        **problem_responses(*COMMON_ERRORS, 422),
    },
)
async def create_event(
    body: EventIn,
    response: Response,
    session: Session,
    principal: Annotated[Principal, Caller("events", "write")],
) -> EventOut:
    event, created = await service.ingest_one(
        session,
        principal.workspace_id,
        body,
        may_use_reserved=principal.allows("events", "admin"),
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return EventOut.model_validate(event)


@router.post(
    "/events/batch",
    summary="Record up to 1,000 events",
    description=(
        "Record 1-1,000 events in one request. Always 200 when the request itself is valid: "
        "`results` holds one entry per item, in order, with `status` `accepted`, `duplicate` "
        "(`id` is the original event) or `rejected` (`errors` point into the request, e.g. "
        "`/events/3/type`); good items are stored even when others are rejected. " + _RULES
    ),
    response_model=EventBatchOut,
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def create_event_batch(
    body: EventBatchIn,
    session: Session,
    principal: Annotated[Principal, Caller("events", "write")],
) -> Response:
    answer = await service.ingest_batch(
        session,
        principal.workspace_id,
        body.events,
        may_use_reserved=principal.allows("events", "admin"),
    )
    # Serialised directly (shape: EventBatchOut): re-validating 1,000 items would cost
    # more than ingesting them.
    return Response(to_json(answer), media_type="application/json")


@router.get(
    "/events",
    summary="List events",
    description=(
        "Events of the workspace, most recently received first, filtered by contact, type "
        "and `occurred_at` range (`occurred_after` inclusive, `occurred_before` exclusive)."
    ),
    response_model=Page[EventOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_events(
    session: Session,
    principal: Annotated[Principal, Caller("events", "read")],
    paging: Paging,
    filters: Annotated[EventFilters, Depends(event_filters)],
) -> Page[EventOut]:
    page = await service.list_events(
        session,
        principal.workspace_id,
        paging,
        filters,
    )
    return Page[EventOut](
        data=[EventOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/events/{event_id}",
    summary="Get an event",
    description="One event of the caller's workspace; other workspaces' ids answer 404.",
    response_model=EventOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_event(
    event_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("events", "read")],
) -> EventOut:
    return EventOut.model_validate(
        await service.get_event(session, principal.workspace_id, event_id)
    )
