from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import AfterValidator

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.egress import GuardPolicy
from app.core.etag import IfMatch, make_etag, responses_with_etag, set_etag
from app.core.idempotency import shown_once
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page, check_text
from app.core.state import app_state
from app.core.usage import USAGE_RESPONSES, UsageOut, delete_responses, usage_description
from app.sequences import service
from app.sequences.models import Sequence, SequenceVersion
from app.sequences.schemas import (
    SequenceCreate,
    SequenceCreatedOut,
    SequenceOut,
    SequenceUpdate,
    SequenceVersionOut,
    SigningSecretOut,
    ValidationOut,
)

router = APIRouter(prefix="/v1", tags=["Sequences"])
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("sequences", "read")]
Writer = Annotated[Principal, Caller("sequences", "write")]


def _destinations(request: Request) -> GuardPolicy:
    """The SSRF guard's policy (configured allowed networks) for webhook-step URLs."""
    return GuardPolicy.from_settings(app_state(request).settings.webhooks)


Destinations = Annotated[GuardPolicy, Depends(_destinations)]
VersionNumber = Annotated[int, Path(ge=1, le=2_147_483_647, description="Version number.")]


def _etag_responses(status: int, *errors: int) -> dict[int | str, dict[str, Any]]:
    return responses_with_etag("sequence", status, *errors)


def _fields(sequence: Sequence, response: Response | None) -> dict[str, Any]:
    if response is not None:
        set_etag(response, sequence.id, sequence.version)
    return {
        "id": sequence.id,
        "name": sequence.name,
        "description": sequence.description,
        "definition": sequence.definition,
        "version": sequence.version,
        "etag": make_etag(sequence.id, sequence.version),
        "published_version": sequence.published_version,
        "created_at": sequence.created_at,
        "updated_at": sequence.updated_at,
    }


def _out(sequence: Sequence, response: Response | None = None) -> SequenceOut:
    return SequenceOut(**_fields(sequence, response))


def _version_out(version: SequenceVersion) -> SequenceVersionOut:
    return SequenceVersionOut.model_validate(version)


@router.post(
    "/sequences",
    summary="Create a sequence",
    description=(
        "A draft sequence: a graph of steps and settings (docs/sequences.md). The shape is "
        "checked now (422 with pointers under `/definition`), and so is every `webhook` "
        "step's URL against the SSRF guard (422 `url_refused` at `/definition/steps/{i}/url`, "
        "docs/ssrf.md); graph and reference rules (targets, reachability, loops, templates, "
        "segments) are checked at publish time and reported by "
        "`GET /v1/sequences/{id}/validation`. The response carries the "
        "`signing_secret` of the sequence's `webhook` steps: it is shown only here and on "
        "rotation."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=SequenceCreatedOut,
    responses=_etag_responses(201, 422),
)
async def create_sequence(
    body: SequenceCreate,
    session: Session,
    principal: Writer,
    response: Response,
    destinations: Destinations,
) -> SequenceCreatedOut:
    sequence = await service.create_sequence(session, principal.workspace_id, body, destinations)
    response.headers["Location"] = f"/v1/sequences/{sequence.id}"
    shown_once(response)
    return SequenceCreatedOut(**_fields(sequence, response), signing_secret=sequence.signing_secret)


@router.get(
    "/sequences",
    summary="List sequences",
    description=(
        "Sequences of the workspace, newest first; `name` keeps those whose name contains it "
        "(case-insensitive)."
    ),
    response_model=Page[SequenceOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_sequences(
    session: Session,
    principal: Reader,
    paging: Paging,
    name: Annotated[
        str | None,
        Query(max_length=200, description="Substring of the name (any case)."),
        AfterValidator(check_text),
    ] = None,
) -> Page[SequenceOut]:
    page = await service.list_sequences(session, principal.workspace_id, paging, name)
    return Page[SequenceOut](data=[_out(s) for s in page.items], next_cursor=page.next_cursor)


@router.get(
    "/sequences/{sequence_id}",
    summary="Get a sequence",
    description="One sequence with its draft definition and its `ETag` (header and `etag`).",
    response_model=SequenceOut,
    responses=_etag_responses(200, 404, 422),
)
async def get_sequence(
    sequence_id: uuid.UUID, session: Session, principal: Reader, response: Response
) -> SequenceOut:
    sequence = await service.get_sequence(session, principal.workspace_id, sequence_id)
    return _out(sequence, response)


@router.patch(
    "/sequences/{sequence_id}",
    summary="Update a sequence's draft",
    description=(
        "Change the name or description, or replace the draft definition (shape-checked like "
        "on create). Published versions never change. Send `If-Match: <ETag>` to refuse the "
        "edit with 412 when the sequence changed since you read it."
    ),
    response_model=SequenceOut,
    responses=_etag_responses(200, 404, 412, 422),
)
async def update_sequence(
    sequence_id: uuid.UUID,
    *,
    body: SequenceUpdate,
    session: Session,
    principal: Writer,
    response: Response,
    destinations: Destinations,
    if_match: IfMatch = None,
) -> SequenceOut:
    sequence = await service.update_sequence(
        session, principal.workspace_id, sequence_id, body, if_match, destinations=destinations
    )
    return _out(sequence, response)


@router.delete(
    "/sequences/{sequence_id}",
    summary="Delete a sequence",
    description=(
        "Delete a sequence with its published versions and finished enrollments. 409 while "
        "any enrollment is active or waiting, and 409 `in-use` (naming them in `used_by`) "
        "while any campaign names it, finished ones included: a campaign keeps its sequence "
        "as the record of what it sent (see `GET /v1/sequences/{id}/usage`); honours "
        "`If-Match`."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=delete_responses(412, 422),
)
async def delete_sequence(
    sequence_id: uuid.UUID, session: Session, principal: Writer, if_match: IfMatch = None
) -> Response:
    await service.delete_sequence(session, principal.workspace_id, sequence_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/sequences/{sequence_id}/signing-secret",
    summary="Rotate the signing secret",
    description=(
        "Replace the Standard Webhooks secret signing this sequence's `webhook` step calls and "
        "return the new one (shown only in this response). Calls from now on are signed with "
        "the new secret."
    ),
    response_model=SigningSecretOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def rotate_signing_secret(
    sequence_id: uuid.UUID, session: Session, principal: Writer, response: Response
) -> SigningSecretOut:
    sequence = await service.rotate_signing_secret(session, principal.workspace_id, sequence_id)
    shown_once(response)
    return SigningSecretOut(sequence_id=sequence.id, signing_secret=sequence.signing_secret)


@router.get(
    "/sequences/{sequence_id}/validation",
    summary="Validate a sequence's draft",
    description=(
        "Every problem that would stop the draft from being published (unique keys, targets, "
        "reachability, loops without a wait, templates, segments, filters, conditions, "
        "timezone), each with a JSON pointer into the sequence body."
    ),
    response_model=ValidationOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def validate_sequence(
    sequence_id: uuid.UUID, session: Session, principal: Reader, destinations: Destinations
) -> ValidationOut:
    errors = await service.check_draft(session, principal.workspace_id, sequence_id, destinations)
    return ValidationOut(valid=not errors, errors=errors)


@router.post(
    "/sequences/{sequence_id}/publish",
    # Where the 201's Location points (app/core/locations.py).
    openapi_extra={"x-location": "/v1/sequences/{sequence_id}/versions/{number}"},
    summary="Publish a version",
    description=(
        "Snapshot the draft as the next immutable version (1, 2, ...): normalised, with every "
        "template pinned to its current published version. 422 lists every validation "
        "problem; 409 when neither the draft nor the pinned templates changed since the "
        "latest version. `If-Match` is optional (publish exactly what you reviewed)."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=SequenceVersionOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 412, 422),
)
async def publish_sequence(
    sequence_id: uuid.UUID,
    session: Session,
    principal: Writer,
    destinations: Destinations,
    if_match: IfMatch = None,
) -> SequenceVersionOut:
    version = await service.publish(
        session, principal.workspace_id, sequence_id, if_match, destinations
    )
    return _version_out(version)


@router.get(
    "/sequences/{sequence_id}/versions",
    summary="List published versions",
    description="Published versions of the sequence, newest first.",
    response_model=Page[SequenceVersionOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_sequence_versions(
    sequence_id: uuid.UUID, session: Session, principal: Reader, paging: Paging
) -> Page[SequenceVersionOut]:
    page = await service.list_versions(session, principal.workspace_id, sequence_id, paging)
    return Page[SequenceVersionOut](
        data=[_version_out(v) for v in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/sequences/{sequence_id}/versions/{number}",
    summary="Get a published version",
    description="One published version by its number, exactly as it was published.",
    response_model=SequenceVersionOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_sequence_version(
    sequence_id: uuid.UUID, number: VersionNumber, session: Session, principal: Reader
) -> SequenceVersionOut:
    found = await service.get_version(session, principal.workspace_id, sequence_id, number)
    return _version_out(found)


@router.get(
    "/sequences/{sequence_id}/usage",
    summary="What uses this sequence",
    description=usage_description("sequence", "campaigns that name it, in any status"),
    response_model=UsageOut,
    responses=USAGE_RESPONSES,
)
async def get_sequence_usage(
    sequence_id: uuid.UUID, session: Session, principal: Reader
) -> UsageOut:
    return await service.usage(session, principal.workspace_id, sequence_id)
