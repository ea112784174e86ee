"""Enrollments over HTTP: start (idempotent), list, get, exit, timeline."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page
from app.sequences.enrollments import service
from app.sequences.enrollments.schemas import (
    EnrollmentCreate,
    EnrollmentExit,
    EnrollmentOut,
    EnrollmentState,
    TimelineEntryOut,
)
from app.sequences.models import Enrollment

router = APIRouter(prefix="/v1", tags=["Enrollments"])
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("sequences", "read")]
Writer = Annotated[Principal, Caller("sequences", "write")]


def _out(enrollment: Enrollment, numbers: dict[uuid.UUID, int]) -> EnrollmentOut:
    return EnrollmentOut(
        id=enrollment.id,
        sequence_id=enrollment.sequence_id,
        sequence_version=numbers.get(enrollment.sequence_version_id, 0),
        contact_id=enrollment.contact_id,
        campaign_id=enrollment.campaign_id,
        source=enrollment.source,
        state=enrollment.state,
        step_key=enrollment.step_key,
        next_action_at=enrollment.next_action_at,
        exit_reason=enrollment.exit_reason,
        started_at=enrollment.started_at,
        finished_at=enrollment.finished_at,
        updated_at=enrollment.updated_at,
    )


async def _one(session: Session, principal: Principal, enrollment: Enrollment) -> EnrollmentOut:
    numbers = await service.version_numbers(session, principal.workspace_id, [enrollment])
    return _out(enrollment, numbers)


@router.post(
    "/sequences/{sequence_id}/enrollments",
    # Where the 201's Location points (app/core/locations.py).
    openapi_extra={"x-location": "/v1/enrollments/{id}"},
    summary="Enroll a contact",
    description=(
        "Starts an existing contact (by `contact_id`, `external_id` or `email`) on the "
        "sequence's latest published version (or `version`). Idempotent: while the contact "
        "has an unfinished enrollment in this sequence, the same request answers it with "
        "200 instead of 201. The first step runs within moments. 422 when the sequence has "
        "no published version or the contact does not exist."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentOut,
    responses={
        200: {"description": "Already enrolled: the unfinished enrollment", "model": EnrollmentOut},
        **problem_responses(*COMMON_ERRORS, 404, 409, 422),
    },
)
async def create_enrollment(
    sequence_id: uuid.UUID,
    body: EnrollmentCreate,
    session: Session,
    principal: Writer,
    response: Response,
) -> EnrollmentOut:
    started = await service.enroll(session, principal.workspace_id, sequence_id, body)
    if not started.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/enrollments/{started.enrollment.id}"
    return await _one(session, principal, started.enrollment)


@router.get(
    "/sequences/{sequence_id}/enrollments",
    summary="List a sequence's enrollments",
    description="Newest first; filter by `state` and `contact_id`.",
    response_model=Page[EnrollmentOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_enrollments(  # noqa: PLR0917 - FastAPI parameters
    sequence_id: uuid.UUID,
    session: Session,
    principal: Reader,
    paging: Paging,
    state: Annotated[EnrollmentState | None, Query(description="Only this state.")] = None,
    contact_id: Annotated[uuid.UUID | None, Query(description="Only this contact.")] = None,
) -> Page[EnrollmentOut]:
    page = await service.list_enrollments(
        session, principal.workspace_id, sequence_id, paging, state=state, contact_id=contact_id
    )
    items = list(page.items)
    numbers = await service.version_numbers(session, principal.workspace_id, items)
    return Page[EnrollmentOut](
        data=[_out(item, numbers) for item in items], next_cursor=page.next_cursor
    )


@router.get(
    "/enrollments/{enrollment_id}",
    summary="Get an enrollment",
    description="State, the step due next and when (`next_action_at`), and how it ended.",
    response_model=EnrollmentOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_enrollment(
    enrollment_id: uuid.UUID, session: Session, principal: Reader
) -> EnrollmentOut:
    enrollment = await service.get_enrollment(session, principal.workspace_id, enrollment_id)
    return await _one(session, principal, enrollment)


@router.post(
    "/enrollments/{enrollment_id}/exit",
    summary="Exit an enrollment",
    description=(
        "Ends an active, waiting or paused enrollment at once (no further step runs; a "
        "step already claimed finishes). 409 when it has already finished."
    ),
    response_model=EnrollmentOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def exit_enrollment(
    enrollment_id: uuid.UUID, body: EnrollmentExit, session: Session, principal: Writer
) -> EnrollmentOut:
    enrollment = await service.exit_enrollment(
        session, principal.workspace_id, enrollment_id, body.reason
    )
    return await _one(session, principal, enrollment)


@router.get(
    "/enrollments/{enrollment_id}/timeline",
    summary="An enrollment's timeline",
    description=(
        "What the engine did, newest first: each step with its outcome, when it was due and "
        "when it ran (lateness), and the message it created."
    ),
    response_model=Page[TimelineEntryOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def enrollment_timeline(
    enrollment_id: uuid.UUID, session: Session, principal: Reader, paging: Paging
) -> Page[TimelineEntryOut]:
    page = await service.timeline(session, principal.workspace_id, enrollment_id, paging)
    return Page[TimelineEntryOut](
        data=[TimelineEntryOut.model_validate(item) for item in page.items],
        next_cursor=page.next_cursor,
    )
