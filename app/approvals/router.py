from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status

from app.approvals import policies, presenter, service
from app.approvals.models import ApprovalPolicy
from app.approvals.schemas import (
    DecisionCreate,
    PolicyCreate,
    PolicyOut,
    PolicyUpdate,
    RequestOut,
    RequestStatus,
)
from app.audit.service import Actor
from app.core.auth import Principal
from app.core.clock import utcnow
from app.core.deps import Caller, Session
from app.core.errors import Forbidden
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page
from app.core.usage import USAGE_RESPONSES, UsageOut, delete_responses, usage_description

router = APIRouter(prefix="/v1", tags=["Approvals"])
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("approvals", "read")]
Writer = Annotated[Principal, Caller("approvals", "write")]


def _policy_out(policy: ApprovalPolicy) -> PolicyOut:
    return PolicyOut.model_validate(policy)


@router.post(
    "/approval-policies",
    summary="Create an approval policy",
    description=(
        "Ordered stages, each with reviewers (roles and/or member ids) and a rule (`all`, "
        '`any`, `{"n_of_m": n}`), plus gates that append a stage when the audience or the '
        "budget exceeds a threshold. `is_default: true` makes it the workspace default (the "
        "previous default stops being one). 422 with pointers when a member does not exist or "
        "a stage could not be satisfied by the current members (a member reviews in one stage "
        "per round: the first that lists them). Changes apply to rounds opened afterwards."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=PolicyOut,
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def create_policy(
    body: PolicyCreate, session: Session, principal: Writer, response: Response
) -> PolicyOut:
    policy = await policies.create_policy(
        session, principal.workspace_id, body, Actor.of(principal)
    )
    response.headers["Location"] = f"/v1/approval-policies/{policy.id}"
    return _policy_out(policy)


@router.get(
    "/approval-policies",
    summary="List approval policies",
    description="The workspace's approval policies, oldest first.",
    response_model=Page[PolicyOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_policies(session: Session, principal: Reader, paging: Paging) -> Page[PolicyOut]:
    page = await policies.list_policies(session, principal.workspace_id, paging)
    return Page[PolicyOut](data=[_policy_out(p) for p in page.items], next_cursor=page.next_cursor)


@router.get(
    "/approval-policies/{policy_id}",
    summary="Get an approval policy",
    description="One approval policy with its stages and gates.",
    response_model=PolicyOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_policy(policy_id: uuid.UUID, session: Session, principal: Reader) -> PolicyOut:
    return _policy_out(await policies.get_policy(session, principal.workspace_id, policy_id))


@router.patch(
    "/approval-policies/{policy_id}",
    summary="Update an approval policy",
    description=(
        "Change the name, the default flag, or replace the stages or gates (validated as on "
        "create). Review rounds already open keep the stages they were opened with."
    ),
    response_model=PolicyOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def update_policy(
    policy_id: uuid.UUID, body: PolicyUpdate, session: Session, principal: Writer
) -> PolicyOut:
    policy = await policies.update_policy(
        session, principal.workspace_id, policy_id, body, Actor.of(principal)
    )
    return _policy_out(policy)


@router.delete(
    "/approval-policies/{policy_id}",
    summary="Delete an approval policy",
    description=(
        "Refused with 409 `in-use` (naming them in `used_by`) while an unfinished campaign "
        "is reviewed under it (see `GET /v1/approval-policies/{id}/usage`); finished "
        "campaigns forget it. Open review rounds keep their stages."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=delete_responses(422),
)
async def delete_policy(policy_id: uuid.UUID, session: Session, principal: Writer) -> Response:
    await policies.delete_policy(session, principal.workspace_id, policy_id, Actor.of(principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/approvals",
    summary="List approval requests (the reviewer inbox)",
    description=(
        "One request per review round of a campaign, oldest first, each with its stages, "
        "decisions so far and the campaign's context (objective, owner, budget, channels, "
        "dates, audience segments, sequence). `reviewer=me` keeps the pending requests whose "
        "current stage lists the caller's member (403 for a key not bound to a member)."
    ),
    response_model=Page[RequestOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_requests(
    session: Session,
    principal: Reader,
    paging: Paging,
    status: Annotated[RequestStatus | None, Query(description="Only this status.")] = None,
    reviewer: Annotated[
        Literal["me"] | None, Query(description="`me`: awaiting the caller's decision.")
    ] = None,
) -> Page[RequestOut]:
    member = None
    if reviewer == "me":
        if principal.member_id is None:
            raise Forbidden("`reviewer=me` needs an API key bound to a member.")
        member = principal.member_id
    page = await service.list_requests(session, principal.workspace_id, paging, status, member)
    data = await presenter.present(session, principal.workspace_id, page.items)
    return Page[RequestOut](data=data, next_cursor=page.next_cursor)


@router.get(
    "/approvals/{request_id}",
    summary="Get an approval request",
    description="One review round with its stages, decisions and the campaign's context.",
    response_model=RequestOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_request(request_id: uuid.UUID, session: Session, principal: Reader) -> RequestOut:
    request = await service.get_request(session, principal.workspace_id, request_id)
    return (await presenter.present(session, principal.workspace_id, [request]))[0]


@router.post(
    "/approvals/{request_id}/decisions",
    # Where the 201's Location points (app/core/locations.py).
    openapi_extra={"x-location": "/v1/approvals/{request_id}"},
    summary="Decide on an approval request",
    description=(
        "`approve`, `reject` or `request_changes`, with an optional comment, by the member the "
        "API key is bound to (403 for an unbound key or a member who is not a reviewer of the "
        "current stage; 409 for a second decision in the same round or a request no longer "
        "pending). The stage completes by its rule and the next one starts; the last stage's "
        "completion approves the campaign; a rejection or a change request sends it back to "
        "draft with the comments."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=RequestOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def decide(
    request_id: uuid.UUID, body: DecisionCreate, session: Session, principal: Writer
) -> RequestOut:
    request = await service.decide(
        session,
        principal.workspace_id,
        request_id,
        body,
        actor=Actor.of(principal),
        now=utcnow(),
    )
    return (await presenter.present(session, principal.workspace_id, [request]))[0]


@router.get(
    "/approval-policies/{policy_id}/usage",
    summary="What uses this approval policy",
    description=usage_description(
        "approval policy",
        "campaigns not yet completed, cancelled or archived that are reviewed under it",
    ),
    response_model=UsageOut,
    responses=USAGE_RESPONSES,
)
async def get_policy_usage(policy_id: uuid.UUID, session: Session, principal: Reader) -> UsageOut:
    return await policies.usage(session, principal.workspace_id, policy_id)
