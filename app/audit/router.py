"""The audit log over HTTP: read-only. There is no write route, so every other method on
these paths answers 405 (rows are appended by the domains, in their own transactions)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.audit import service
from app.audit.models import AuditEvent
from app.audit.schemas import (
    ActionFilter,
    ActorOut,
    AuditEventOut,
    AuditFilters,
    EntityType,
    RequestId,
)
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.grammar import QueryInstant, after, before
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page

router = APIRouter(prefix="/v1", tags=["Audit"])
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("audit", "read")]


def audit_filters(
    *,
    action: Annotated[
        ActionFilter | None,
        Query(
            description="Exact action (`campaign.submitted`) or a prefix ending in `.*` "
            "(`campaign.*`).",
            examples=["campaign.*"],
        ),
    ] = None,
    entity_type: Annotated[
        EntityType | None, Query(description="Only this entity type, e.g. `campaign`.")
    ] = None,
    entity_id: Annotated[uuid.UUID | None, Query(description="Only this entity.")] = None,
    member_id: Annotated[
        uuid.UUID | None, Query(description="Only actions by this member (actor).")
    ] = None,
    api_key_id: Annotated[
        uuid.UUID | None, Query(description="Only actions made with this API key.")
    ] = None,
    occurred_after: Annotated[QueryInstant | None, after("occurred_at")] = None,
    occurred_before: Annotated[QueryInstant | None, before("occurred_at")] = None,
    request_id: Annotated[
        RequestId | None, Query(description="Only events of this request (`X-Request-Id`).")
    ] = None,
) -> AuditFilters:
    return AuditFilters(
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        member_id=member_id,
        api_key_id=api_key_id,
        occurred_after=occurred_after,
        occurred_before=occurred_before,
        request_id=request_id,
    )


def _out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=event.id,
        occurred_at=event.occurred_at,
        actor=ActorOut(
            type=event.actor_type,
            member_id=event.member_id,
            api_key_id=event.api_key_id,
        ),
        action=event.action,
        entity_type=event.entity_type,
        entity_id=event.entity_id,
        changes=event.changes,
        data=event.data,
        request_id=event.request_id,
    )


@router.get(
    "/audit-events",
    summary="List audit events",
    description=(
        "What happened in the workspace, newest first: state changes, approval decisions, "
        "edits (with a before/after diff), launches, spend, and every successful write made "
        "with an API key (`api.post`, `api.put`, `api.patch`, `api.delete`). Filter by "
        "`action` (exact or `prefix.*`), entity, actor (`member_id`, `api_key_id`), "
        "`occurred_at` range (`occurred_after` inclusive, `occurred_before` exclusive) and "
        "`request_id`. The log is append-only: no operation changes or deletes an event."
    ),
    response_model=Page[AuditEventOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_audit_events(
    session: Session,
    principal: Reader,
    paging: Paging,
    filters: Annotated[AuditFilters, Depends(audit_filters)],
) -> Page[AuditEventOut]:
    page = await service.list_events(session, principal.workspace_id, paging, filters)
    return Page[AuditEventOut](data=[_out(e) for e in page.items], next_cursor=page.next_cursor)


@router.get(
    "/audit-events/{event_id}",
    summary="Get an audit event",
    description="One audit event of the caller's workspace; other workspaces' ids answer 404.",
    response_model=AuditEventOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_audit_event(
    event_id: uuid.UUID, session: Session, principal: Reader
) -> AuditEventOut:
    return _out(await service.get_event(session, principal.workspace_id, event_id))
