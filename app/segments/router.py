from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.etag import IfMatch, responses_with_etag, set_etag
from app.core.etag import make_etag as _make_etag
from app.core.grammar import QueryInstant, after, before
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page
from app.core.state import app_state
from app.core.usage import USAGE_RESPONSES, UsageOut, delete_responses, usage_description
from app.segments import service
from app.segments.models import Segment
from app.segments.schemas import (
    ChangeOut,
    ContactSample,
    CountOut,
    MemberReferences,
    MembersChanged,
    NotFoundReferences,
    PreviewOut,
    PreviewRequest,
    SegmentCreate,
    SegmentMemberOut,
    SegmentOut,
    SegmentUpdate,
    SnapshotOut,
)

router = APIRouter(prefix="/v1", tags=["Segments"])
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("segments", "read")]
Writer = Annotated[Principal, Caller("segments", "write")]


def _evaluation_timeout(request: Request) -> float:
    return app_state(request).settings.segments.evaluation_timeout_seconds


def _etag_responses(status: int, *errors: int) -> dict[int | str, dict[str, Any]]:
    return responses_with_etag("segment", status, *errors)


def _out(segment: Segment, response: Response | None = None) -> SegmentOut:
    if response is not None:
        set_etag(response, segment.id, segment.version)
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        description=segment.description,
        kind=segment.kind,
        rule=segment.rule,
        version=segment.version,
        etag=_make_etag(segment.id, segment.version),
        member_count=segment.member_count,
        refreshed_at=segment.refreshed_at,
        created_at=segment.created_at,
        updated_at=segment.updated_at,
    )


@router.post(
    "/segments",
    summary="Create a segment",
    description=(
        "A `dynamic` segment has a `rule` and its members follow it (the membership table is "
        "filled by a refresh job within seconds of creation). A `static` segment has no rule "
        "and takes explicit members. Rules may reference other segments; unknown references "
        "and cycles answer 422 with pointers under `/rule`. The response carries an `ETag`."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=SegmentOut,
    responses=_etag_responses(201, 409, 422),
)
async def create_segment(
    body: SegmentCreate, session: Session, principal: Writer, response: Response
) -> SegmentOut:
    segment = await service.create_segment(session, principal.workspace_id, body)
    response.headers["Location"] = f"/v1/segments/{segment.id}"
    return _out(segment, response)


@router.get(
    "/segments",
    summary="List segments",
    description="Segments of the workspace, newest first, optionally filtered by `kind`.",
    response_model=Page[SegmentOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_segments(
    session: Session,
    principal: Reader,
    paging: Paging,
    kind: Annotated[
        Literal["dynamic", "static"] | None, Query(description="Only this kind.")
    ] = None,
) -> Page[SegmentOut]:
    page = await service.list_segments(session, principal.workspace_id, paging, kind)
    return Page[SegmentOut](data=[_out(s) for s in page.items], next_cursor=page.next_cursor)


@router.post(
    "/segments/preview",
    summary="Preview a rule",
    description=(
        "Evaluate a rule now, without saving anything: the number of matching contacts and "
        "a sample of up to `sample_size` of them (newest first). The evaluation is bounded "
        "(`HERALD_SEGMENTS__EVALUATION_TIMEOUT_SECONDS`, 30 s by default): a rule that takes "
        "longer answers 422 with code `evaluation_timeout`."
    ),
    response_model=PreviewOut,
    responses=problem_responses(*COMMON_ERRORS, 409, 422),
)
async def preview_segment(
    body: PreviewRequest, request: Request, session: Session, principal: Reader
) -> PreviewOut:
    result = await service.preview(
        session, principal.workspace_id, body, timeout_seconds=_evaluation_timeout(request)
    )
    return PreviewOut(
        count=result.count,
        sample=[ContactSample.model_validate(ref) for ref in result.sample],
        computed_at=result.computed_at,
    )


@router.get(
    "/segments/{segment_id}",
    summary="Get a segment",
    description="One segment with its `ETag` (header and `etag` field).",
    response_model=SegmentOut,
    responses=_etag_responses(200, 404, 422),
)
async def get_segment(
    segment_id: uuid.UUID, session: Session, principal: Reader, response: Response
) -> SegmentOut:
    segment = await service.get_segment(session, principal.workspace_id, segment_id)
    return _out(segment, response)


@router.patch(
    "/segments/{segment_id}",
    summary="Update a segment",
    description=(
        "Change the name, description or (dynamic segments) the rule. Omitted fields stay. "
        "Send `If-Match: <ETag>` to refuse the edit with 412 when someone changed the segment "
        "since you read it (without `If-Match` the edit applies). Any change bumps `version` "
        "and the `ETag`; a rule change also re-evaluates membership in the background."
    ),
    response_model=SegmentOut,
    responses=_etag_responses(200, 404, 409, 412, 422),
)
async def update_segment(
    segment_id: uuid.UUID,
    *,
    body: SegmentUpdate,
    session: Session,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> SegmentOut:
    segment = await service.update_segment(
        session, principal.workspace_id, segment_id, body, if_match
    )
    return _out(segment, response)


@router.delete(
    "/segments/{segment_id}",
    summary="Delete a segment",
    description=(
        "Delete a segment with its memberships and history. Refused with 409 `in-use` "
        "(naming them in `used_by`) while another segment's rule, a sequence, or an unfinished "
        "campaign's audience or trigger uses it (see `GET /v1/segments/{id}/usage`). Honours "
        "`If-Match` like PATCH."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=delete_responses(412, 422),
)
async def delete_segment(
    segment_id: uuid.UUID, session: Session, principal: Writer, if_match: IfMatch = None
) -> Response:
    await service.delete_segment(session, principal.workspace_id, segment_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/segments/{segment_id}/count",
    summary="Count a segment",
    description=(
        "Dynamic segments: the rule evaluated now (`source: live`), which may run ahead of "
        "`member_count` by the few seconds membership upkeep takes; bounded like a preview "
        "(422 `evaluation_timeout` past `HERALD_SEGMENTS__EVALUATION_TIMEOUT_SECONDS`). "
        "Static segments: the number of explicit members (`source: membership`)."
    ),
    response_model=CountOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def count_segment(
    segment_id: uuid.UUID, request: Request, session: Session, principal: Reader
) -> CountOut:
    result = await service.count(
        session, principal.workspace_id, segment_id, timeout_seconds=_evaluation_timeout(request)
    )
    return CountOut(
        segment_id=result.segment_id,
        count=result.count,
        source=result.source,
        computed_at=result.computed_at,
    )


@router.get(
    "/segments/{segment_id}/members",
    summary="List members",
    description="Members from the membership table with the time they entered, paginated.",
    response_model=Page[SegmentMemberOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_segment_members(
    segment_id: uuid.UUID, session: Session, principal: Reader, paging: Paging
) -> Page[SegmentMemberOut]:
    page = await service.list_members(session, principal.workspace_id, segment_id, paging)
    return Page[SegmentMemberOut](
        data=[SegmentMemberOut.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )


def _members_changed(result: service.MembersChange) -> MembersChanged:
    return MembersChanged(
        matched=result.matched,
        changed=result.changed,
        unchanged=result.unchanged,
        not_found=NotFoundReferences(
            contact_ids=result.not_found_ids,
            external_ids=result.not_found_external_ids,
            emails=result.not_found_emails,
        ),
        member_count=result.member_count,
    )


@router.post(
    "/segments/{segment_id}/members",
    summary="Add members to a static segment",
    description=(
        "Add up to 1,000 contacts named by `contact_ids`, `external_ids` or `emails`, in one "
        "set-wise statement. Already-members are counted as `unchanged`; references that match "
        "no contact are listed in `not_found`. 409 on a dynamic segment."
    ),
    response_model=MembersChanged,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def add_segment_members(
    segment_id: uuid.UUID, body: MemberReferences, session: Session, principal: Writer
) -> MembersChanged:
    result = await service.add_members(session, principal.workspace_id, segment_id, body)
    return _members_changed(result)


@router.post(
    "/segments/{segment_id}/members/remove",
    summary="Remove members from a static segment",
    description=(
        "Remove up to 1,000 contacts named by `contact_ids`, `external_ids` or `emails`. "
        "Contacts that were not members are counted as `unchanged`. 409 on a dynamic segment."
    ),
    response_model=MembersChanged,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def remove_segment_members(
    segment_id: uuid.UUID, body: MemberReferences, session: Session, principal: Writer
) -> MembersChanged:
    result = await service.remove_members(session, principal.workspace_id, segment_id, body)
    return _members_changed(result)


@router.get(
    "/segments/{segment_id}/changes",
    summary="List membership changes",
    description=(
        "`entered` / `left` records with the time they happened, newest first. Filter by "
        "`occurred_after` (inclusive), `occurred_before` (exclusive), `change` and `contact_id`."
    ),
    response_model=Page[ChangeOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_segment_changes(
    segment_id: uuid.UUID,
    *,
    session: Session,
    principal: Reader,
    paging: Paging,
    occurred_after: Annotated[QueryInstant | None, after("occurred_at")] = None,
    occurred_before: Annotated[QueryInstant | None, before("occurred_at")] = None,
    change: Annotated[Literal["entered", "left"] | None, Query(description="Only this.")] = None,
    contact_id: Annotated[uuid.UUID | None, Query(description="Only this contact.")] = None,
) -> Page[ChangeOut]:
    page = await service.list_changes(
        session,
        principal.workspace_id,
        segment_id,
        paging,
        window=(occurred_after, occurred_before),
        change=change,
        contact_id=contact_id,
    )
    return Page[ChangeOut](
        data=[ChangeOut.model_validate(row) for row in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/segments/{segment_id}/history",
    summary="Member count history",
    description=(
        "Snapshots of `member_count`, newest first: one whenever the count changed since the "
        "last snapshot (checked every minute), and at least one an hour. Filter by "
        "`taken_after` (inclusive) and `taken_before` (exclusive)."
    ),
    response_model=Page[SnapshotOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def segment_history(
    segment_id: uuid.UUID,
    *,
    session: Session,
    principal: Reader,
    paging: Paging,
    taken_after: Annotated[QueryInstant | None, after("taken_at")] = None,
    taken_before: Annotated[QueryInstant | None, before("taken_at")] = None,
) -> Page[SnapshotOut]:
    page = await service.history(
        session, principal.workspace_id, segment_id, paging, (taken_after, taken_before)
    )
    return Page[SnapshotOut](
        data=[SnapshotOut.model_validate(row) for row in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/segments/{segment_id}/usage",
    summary="What uses this segment",
    description=usage_description(
        "segment", "other segments' rules, sequences, unfinished campaigns' audiences and triggers"
    ),
    response_model=UsageOut,
    responses=USAGE_RESPONSES,
)
async def get_segment_usage(segment_id: uuid.UUID, session: Session, principal: Reader) -> UsageOut:
    return await service.usage(session, principal.workspace_id, segment_id)
