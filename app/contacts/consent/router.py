from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.contacts.consent import service
from app.contacts.consent.schemas import (
    ConsentChangeOut,
    ConsentOut,
    ConsentUpdate,
    ContactConsentOut,
    SuppressionCheck,
    SuppressionCheckItem,
    SuppressionCheckOut,
    SuppressionCreate,
    SuppressionOut,
)
from app.contacts.vocabulary import Channel, SuppressionReason
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page

router = APIRouter(prefix="/v1")
Paging = Annotated[PageParams, Depends(page_params)]


def _consent_out(view: service.ConsentView) -> ContactConsentOut:
    channels = [
        ConsentOut.model_validate(row)
        if row is not None
        else ConsentOut(channel=channel, status="unknown")
        for channel, row in view.current.items()
    ]
    return ContactConsentOut(
        contact_id=view.contact_id,
        channels=channels,
        recent_history=[ConsentChangeOut.model_validate(c) for c in view.recent_history],
    )


@router.put(
    "/contacts/{contact_id}/consent/{channel}",
    tags=["Consent"],
    summary="Record a consent change",
    description=(
        "Set a contact's consent on one channel (`email`, `sms`) with provenance: `source`, "
        "optional `ip` (IPv4/IPv6) and `occurred_at` (not in the future; default now). The "
        "change is always appended to the history; it becomes the current consent unless a "
        "later change is already recorded. `unsubscribed` also suppresses the contact's address "
        "on that channel (reason `unsubscribed`); `subscribed` lifts such an `unsubscribed` "
        "suppression, never a `hard_bounce`, `complaint`, `manual` or `erased` one. An erased "
        "contact answers 409."
    ),
    response_model=ContactConsentOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def set_contact_consent(
    contact_id: uuid.UUID,
    channel: Channel,
    body: ConsentUpdate,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "write")],
) -> ContactConsentOut:
    view = await service.set_consent(session, principal.workspace_id, contact_id, channel, body)
    return _consent_out(view)


@router.get(
    "/contacts/{contact_id}/consent",
    tags=["Consent"],
    summary="Get a contact's consent",
    description=(
        "Current consent on every channel (`unknown` with no provenance when never recorded) "
        "and the 20 most recently recorded changes."
    ),
    response_model=ContactConsentOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_contact_consent(
    contact_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
) -> ContactConsentOut:
    return _consent_out(await service.get_consent(session, principal.workspace_id, contact_id))


@router.get(
    "/contacts/{contact_id}/consent/history",
    tags=["Consent"],
    summary="List a contact's consent history",
    description="Every recorded consent change of the contact, newest recorded first.",
    response_model=Page[ConsentChangeOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_consent_history(
    contact_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
    paging: Paging,
    channel: Annotated[Channel | None, Query(description="Only this channel.")] = None,
) -> Page[ConsentChangeOut]:
    page = await service.consent_history(
        session, principal.workspace_id, contact_id, channel, paging
    )
    return Page[ConsentChangeOut](
        data=[ConsentChangeOut.model_validate(c) for c in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/suppressions",
    tags=["Consent"],
    summary="List suppressions",
    description=(
        "Suppressed addresses (as hashes), newest first, optionally filtered by channel and reason."
    ),
    response_model=Page[SuppressionOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_suppressions(
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
    paging: Paging,
    channel: Annotated[Channel | None, Query(description="Only this channel.")] = None,
    reason: Annotated[SuppressionReason | None, Query(description="Only this reason.")] = None,
) -> Page[SuppressionOut]:
    page = await service.list_suppressions(session, principal.workspace_id, channel, reason, paging)
    return Page[SuppressionOut](
        data=[SuppressionOut.model_validate(s) for s in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/suppressions",
    tags=["Consent"],
    summary="Suppress an address",
    description=(
        "Add an address to the suppression list. The address is normalised (emails trimmed "
        "and lowercased; phones stripped of spaces, dashes, dots and parentheses, then E.164) "
        'and stored only as SHA-256 hex of `"<channel>:<normalised address>"`. Idempotent on '
        "(channel, address): suppressing an already suppressed address answers 200 with the "
        "existing entry, unchanged; a new entry answers 201."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=SuppressionOut,
    responses={
        200: {"model": SuppressionOut, "description": "Already suppressed: the existing entry."},
        **problem_responses(*COMMON_ERRORS, 422),
    },
)
async def create_suppression(
    body: SuppressionCreate,
    response: Response,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "write")],
) -> SuppressionOut:
    entry, created = await service.create_suppression(session, principal.workspace_id, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return SuppressionOut.model_validate(entry)


@router.post(
    "/suppressions/check",
    tags=["Consent"],
    summary="Check addresses against the suppression list",
    description=(
        "Which of up to 1,000 addresses on one channel are suppressed, answered per address in "
        "request order, in one query. A malformed address is a 422 pointing at it. Nothing is "
        "written."
    ),
    response_model=SuppressionCheckOut,
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def check_suppressions(
    body: SuppressionCheck,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
) -> SuppressionCheckOut:
    results = await service.check_suppressions(session, principal.workspace_id, body)
    items = [
        SuppressionCheckItem(
            address=result.address,
            suppressed=result.suppression is not None,
            reason=result.suppression.reason if result.suppression else None,
            suppression_id=result.suppression.id if result.suppression else None,
        )
        for result in results
    ]
    return SuppressionCheckOut(
        channel=body.channel,
        suppressed_count=sum(item.suppressed for item in items),
        results=items,
    )


@router.get(
    "/suppressions/{suppression_id}",
    tags=["Consent"],
    summary="Get a suppression",
    description="One suppression entry of the caller's workspace.",
    response_model=SuppressionOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_suppression(
    suppression_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
) -> SuppressionOut:
    entry = await service.get_suppression(session, principal.workspace_id, suppression_id)
    return SuppressionOut.model_validate(entry)


@router.delete(
    "/suppressions/{suppression_id}",
    tags=["Consent"],
    summary="Delete a suppression",
    description=(
        "Make an address reachable again. Entries with reason `erased` cannot be deleted (409): "
        "they are all that keeps an erased person from being contacted again."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def delete_suppression(
    suppression_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "write")],
) -> Response:
    await service.delete_suppression(session, principal.workspace_id, suppression_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
