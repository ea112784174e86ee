from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.contacts import service
from app.contacts.repository import ContactFilters
from app.contacts.schemas import (
    ContactCreate,
    ContactOut,
    ContactUpdate,
    ContactUpsert,
    ContactUpserted,
    parse_attribute_filter,
)
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.errors import FieldError, Unprocessable
from app.core.grammar import QueryInstant, after, before
from app.core.normalize import normalize_email
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page, check_text

router = APIRouter(prefix="/v1")
Paging = Annotated[PageParams, Depends(page_params)]


def contact_filters(  # noqa: PLR0917 - FastAPI query parameters
    email: Annotated[
        str | None, Query(max_length=320, description="Exact email (compared lowercased).")
    ] = None,
    external_id: Annotated[str | None, Query(max_length=255, description="Exact id.")] = None,
    attribute: Annotated[
        list[str],
        Query(
            max_length=10,
            description=(
                "Attribute equality, `key:value`, repeatable (all must match): "
                "`?attribute=plan:pro&attribute=seats:12`. The value is read as JSON when it "
                'is a JSON scalar (`12`, `true`, `null`, `"12"` for the string), else as text.'
            ),
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    created_after: Annotated[QueryInstant | None, after("created_at")] = None,
    created_before: Annotated[QueryInstant | None, before("created_at")] = None,
    updated_after: Annotated[QueryInstant | None, after("updated_at")] = None,
    updated_before: Annotated[QueryInstant | None, before("updated_at")] = None,
) -> ContactFilters:
    errors: list[FieldError] = []
    for name, value in (("email", email), ("external_id", external_id)):
        try:
            check_text(value or "")
        except ValueError as exc:
            errors.append(
                FieldError(
                    pointer=f"/{name}", location="query", message=str(exc), code="invalid_character"
                )
            )
    parsed = []
    for index, raw in enumerate(attribute):
        try:
            parsed.append(parse_attribute_filter(raw))
        except ValueError as exc:
            errors.append(
                FieldError(
                    pointer=f"/attribute/{index}",
                    location="query",
                    message=str(exc),
                    code="attribute_filter",
                )
            )
    if errors:
        names = ", ".join(f"query{e.pointer}" for e in errors)
        raise Unprocessable(f"The request has invalid fields: {names}.", errors=errors)
    return ContactFilters(
        email=normalize_email(email) if email is not None else None,
        external_id=external_id.strip() if external_id is not None else None,
        attributes=parsed,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
    )


Filters = Annotated[ContactFilters, Depends(contact_filters)]


def _out(contact: object) -> ContactOut:
    return ContactOut.model_validate(contact)


@router.get(
    "/contacts",
    tags=["Contacts"],
    summary="List contacts",
    description=(
        "Contacts of the workspace, newest first, with optional filters (all combined with "
        "AND): exact `email` or `external_id`, attribute equality (`attribute=plan:pro`, "
        "repeatable), and exclusive `created_*` / `updated_*` bounds (RFC 3339 with offset). "
        "Erased contacts are never listed."
    ),
    response_model=Page[ContactOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_contacts(
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
    paging: Paging,
    filters: Filters,
) -> Page[ContactOut]:
    page = await service.list_contacts(session, principal.workspace_id, paging, filters)
    return Page[ContactOut](data=[_out(c) for c in page.items], next_cursor=page.next_cursor)


@router.post(
    "/contacts",
    tags=["Contacts"],
    summary="Create a contact",
    description=(
        "Create a contact identified by `external_id`, `email` or both (each unique in the "
        "workspace: a duplicate answers 409). Email is validated and stored lowercased; "
        "phone must be E.164; timezone an IANA name. `null` attribute values are dropped. "
        "To create-or-update, use `POST /v1/contacts/upsert`."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=ContactOut,
    responses=problem_responses(*COMMON_ERRORS, 409, 422),
)
async def create_contact(
    body: ContactCreate,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "write")],
) -> ContactOut:
    return _out(await service.create_contact(session, principal.workspace_id, body))


@router.post(
    "/contacts/upsert",
    tags=["Contacts"],
    summary="Create or update a contact",
    description=(
        "Find the contact by `external_id` (it wins when both are given), else by `email`; "
        "an unknown `external_id` adopts the contact holding `email` if that contact has no "
        "external id yet. If `external_id` and `email` name two different contacts: 409. "
        "Found: given fields replace stored ones, omitted or `null` fields stay, attributes "
        "are merged (`null` removes a key). Answers 201 when created, 200 otherwise, with "
        "`outcome` (`created`, `updated`, `unchanged`). Safe under concurrency: concurrent "
        "upserts of one contact yield one row."
    ),
    response_model=ContactUpserted,
    responses={
        201: {"description": "Created.", "model": ContactUpserted},
        **problem_responses(*COMMON_ERRORS, 409, 422),
    },
)
async def upsert_contact(
    body: ContactUpsert,
    response: Response,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "write")],
) -> ContactUpserted:
    contact, outcome = await service.upsert_contact(session, principal.workspace_id, body)
    if outcome == "created":
        response.status_code = status.HTTP_201_CREATED
    return ContactUpserted(**_out(contact).model_dump(), outcome=outcome)


@router.get(
    "/contacts/{contact_id}",
    tags=["Contacts"],
    summary="Get a contact",
    description=(
        "One contact. Ids of other workspaces, of deleted contacts and of erased contacts all "
        "answer 404."
    ),
    response_model=ContactOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_contact(
    contact_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
) -> ContactOut:
    return _out(await service.get_contact(session, principal.workspace_id, contact_id))


@router.patch(
    "/contacts/{contact_id}",
    tags=["Contacts"],
    summary="Update a contact",
    description=(
        "Change some fields. `attributes` are merged into the stored ones (shallow; `null` "
        "removes a key); other given fields replace the stored value (`null` clears it; a "
        "contact keeps at least one of `external_id` / `email`). Omitted fields stay. "
        "Taking an `external_id` or `email` another contact has answers 409."
    ),
    response_model=ContactOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def update_contact(
    contact_id: uuid.UUID,
    body: ContactUpdate,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "write")],
) -> ContactOut:
    return _out(await service.update_contact(session, principal.workspace_id, contact_id, body))


@router.delete(
    "/contacts/{contact_id}",
    tags=["Contacts"],
    summary="Delete a contact",
    description=(
        "Delete the contact row and what hangs off it (consents, events, memberships). Its "
        "segment memberships are ended first: every segment's `member_count` drops at once "
        "and `segment.left` is emitted. This is not erasure: suppressions are untouched; use "
        "the privacy erasure request to forget a person for good."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def delete_contact(
    contact_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "write")],
) -> Response:
    await service.delete_contact(session, principal.workspace_id, contact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
