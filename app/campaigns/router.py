from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.campaigns import service, spend
from app.campaigns.models import Campaign, SpendEntry
from app.campaigns.repository import CampaignFilters
from app.campaigns.schemas import (
    BudgetOut,
    CampaignCreate,
    CampaignOut,
    CampaignStatus,
    CampaignUpdate,
    ResumeRequest,
    SpendCreate,
    SpendOut,
)
from app.campaigns.transitions import allowed_actions
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.etag import IfMatch, make_etag, responses_with_etag, set_etag
from app.core.grammar import QueryInstant, after, before
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page

router = APIRouter(prefix="/v1", tags=["Campaigns"])
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("campaigns", "read")]
Writer = Annotated[Principal, Caller("campaigns", "write")]
Transition = Callable[[AsyncSession, uuid.UUID, uuid.UUID, Actor, str | None], Awaitable[Campaign]]


def _etag_responses(status: int, *errors: int) -> dict[int | str, dict[str, Any]]:
    return responses_with_etag("campaign", status, *errors)


def _out(campaign: Campaign, response: Response | None = None) -> CampaignOut:
    if response is not None:
        set_etag(response, campaign.id, campaign.version)
    state = service.editable_state(campaign)
    variance = None
    if campaign.planned_start_at is not None and campaign.launched_at is not None:
        variance = (campaign.launched_at - campaign.planned_start_at).total_seconds()
    return CampaignOut(
        **state,
        id=campaign.id,
        sequence_version_id=campaign.sequence_version_id,
        status=campaign.status,
        allowed_transitions=allowed_actions(campaign.status),
        approval_round=campaign.approval_round,
        version=campaign.version,
        etag=make_etag(campaign.id, campaign.version),
        planned_start_at=campaign.planned_start_at,
        launched_at=campaign.launched_at,
        variance_seconds=variance,
        enrolled_count=campaign.enrolled_count,
        finished_at=campaign.finished_at,
        archived_at=campaign.archived_at,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
    )


def _spend_out(entry: SpendEntry) -> SpendOut:
    return SpendOut(
        id=entry.id,
        campaign_id=entry.campaign_id,
        amount=entry.amount,
        currency=entry.currency,
        date=entry.spent_on,
        channel=entry.channel,
        note=entry.note,
        created_at=entry.created_at,
    )


@router.post(
    "/campaigns",
    summary="Create a campaign",
    description=(
        "A new campaign in `draft`. Segments, sequence (and version), owner and approval "
        "policy must exist in the workspace; `end_at` must follow `start_at`; a `triggered` "
        "campaign needs a `trigger`. Every problem answers 422 with a pointer. The response "
        "carries an `ETag`."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignOut,
    responses=_etag_responses(201, 422),
)
async def create_campaign(
    body: CampaignCreate, session: Session, principal: Writer, response: Response
) -> CampaignOut:
    campaign = await service.create_campaign(
        session, principal.workspace_id, body, Actor.of(principal)
    )
    response.headers["Location"] = f"/v1/campaigns/{campaign.id}"
    return _out(campaign, response)


@router.get(
    "/campaigns",
    summary="List campaigns",
    description=(
        "Campaigns of the workspace, newest first. Filters combine: `status`, "
        "`owner_member_id`, `tag`, and half-open ranges (`from` inclusive, `to` exclusive) on "
        "`created_at` and `start_at`."
    ),
    response_model=Page[CampaignOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_campaigns(
    *,
    session: Session,
    principal: Reader,
    paging: Paging,
    status: Annotated[CampaignStatus | None, Query(description="Only this status.")] = None,
    owner_member_id: Annotated[uuid.UUID | None, Query(description="Only this owner.")] = None,
    tag: Annotated[str | None, Query(max_length=64, description="Carrying this tag.")] = None,
    created_after: Annotated[QueryInstant | None, after("created_at")] = None,
    created_before: Annotated[QueryInstant | None, before("created_at")] = None,
    start_after: Annotated[QueryInstant | None, after("start_at")] = None,
    start_before: Annotated[QueryInstant | None, before("start_at")] = None,
) -> Page[CampaignOut]:
    filters = CampaignFilters(
        status, owner_member_id, tag, created_after, created_before, start_after, start_before
    )
    page = await service.list_campaigns(session, principal.workspace_id, paging, filters)
    return Page[CampaignOut](data=[_out(c) for c in page.items], next_cursor=page.next_cursor)


@router.get(
    "/campaigns/{campaign_id}",
    summary="Get a campaign",
    description=(
        "One campaign with its status, the transitions allowed now, its launch variance "
        "(`planned_start_at`, `launched_at`, `variance_seconds`) and its `ETag`."
    ),
    response_model=CampaignOut,
    responses=_etag_responses(200, 404, 422),
)
async def get_campaign(
    campaign_id: uuid.UUID, session: Session, principal: Reader, response: Response
) -> CampaignOut:
    campaign = await service.get_campaign(session, principal.workspace_id, campaign_id)
    return _out(campaign, response)


@router.patch(
    "/campaigns/{campaign_id}",
    summary="Edit a campaign",
    description=(
        "Change any field; `null` clears an optional one. `name`, `description`, `tags` and "
        "`owner_member_id` are metadata and can change in any status but `archived`. Every "
        "other field is content: editing it in `in_review`, `approved` or `scheduled` returns "
        "the campaign to `draft`, voids its approval and drops its schedule; in `running`, "
        "`paused`, `completed` or `cancelled` it answers 409. Send `If-Match` to get 412 on a "
        "stale edit."
    ),
    response_model=CampaignOut,
    responses=_etag_responses(200, 404, 409, 412, 422),
)
async def update_campaign(
    campaign_id: uuid.UUID,
    *,
    body: CampaignUpdate,
    session: Session,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignOut:
    campaign = await service.update_campaign(
        session,
        principal.workspace_id,
        campaign_id,
        body,
        if_match=if_match,
        actor=Actor.of(principal),
    )
    return _out(campaign, response)


_TRANSITION_DOCS: dict[str, tuple[str, str, Transition]] = {
    "submit": (
        "Submit for approval",
        "draft -> in_review: opens approval round `approval_round + 1` under the campaign's "
        "policy (or the workspace default). Without any policy the campaign is approved at once.",
        service.submit,
    ),
    "reopen": (
        "Return to draft",
        "in_review, approved or scheduled -> draft: voids the approval and drops the schedule.",
        service.reopen,
    ),
    "schedule": (
        "Schedule the launch",
        "approved -> scheduled, after launch validation: a published sequence, the channels "
        "its send steps use among `channels`, a non-empty audience (one_off), a start now or "
        "later and an end after it. 422 lists every problem at once.",
        service.schedule,
    ),
    "pause": (
        "Pause",
        "running -> paused: waiting enrollments are held until resumed.",
        service.pause,
    ),
    "cancel": (
        "Cancel",
        "scheduled, running or paused -> cancelled: the launch is dropped and every live "
        "enrollment exits.",
        service.cancel,
    ),
    "complete": (
        "Complete",
        "running or paused -> completed: no new enrollments; live ones finish their sequence.",
        service.complete,
    ),
    "archive": (
        "Archive",
        "draft, completed or cancelled -> archived: read-only from then on.",
        service.archive,
    ),
}


def _transition_route(action: str, summary: str, detail: str, command: Transition) -> None:
    async def endpoint(
        campaign_id: uuid.UUID,
        session: Session,
        principal: Writer,
        response: Response,
        if_match: IfMatch = None,
    ) -> CampaignOut:
        campaign = await command(
            session, principal.workspace_id, campaign_id, Actor.of(principal), if_match
        )
        return _out(campaign, response)

    endpoint.__name__ = f"{action}_campaign"
    router.add_api_route(
        f"/campaigns/{{campaign_id}}/{action}",
        endpoint,
        methods=["POST"],
        summary=summary,
        description=detail + " An illegal transition answers 409 with `status` and `allowed`.",
        response_model=CampaignOut,
        responses=_etag_responses(200, 404, 409, 412, 422),
    )


for _action, (_summary, _detail, _command) in _TRANSITION_DOCS.items():
    _transition_route(_action, _summary, _detail, _command)


@router.post(
    "/campaigns/{campaign_id}/resume",
    summary="Resume",
    description=(
        "paused -> running: held enrollments continue. `overdue` says what happens to steps "
        "that fell due during the pause: `send_now` or `skip`. An illegal transition answers "
        "409 with `status` and `allowed`."
    ),
    response_model=CampaignOut,
    responses=_etag_responses(200, 404, 409, 412, 422),
)
async def resume_campaign(
    campaign_id: uuid.UUID,
    *,
    session: Session,
    principal: Writer,
    response: Response,
    body: Annotated[
        ResumeRequest | None, Body(examples=[{"overdue": "send_now"}, {"overdue": "skip"}])
    ] = None,
    if_match: IfMatch = None,
) -> CampaignOut:
    overdue = body.overdue if body is not None else "send_now"
    campaign = await service.resume(
        session,
        principal.workspace_id,
        campaign_id,
        Actor.of(principal),
        if_match,
        overdue=overdue,
    )
    return _out(campaign, response)


@router.post(
    "/campaigns/{campaign_id}/spend",
    # Where the 201's Location points (app/core/locations.py).
    openapi_extra={"x-location": "/v1/campaigns/{campaign_id}/spend"},
    summary="Record spend",
    description=(
        "One spend entry: `amount` > 0 in the budget's `currency` (422 otherwise, or when the "
        "campaign has no budget), the `date` spent, optional `channel` and `note`. Audited."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=SpendOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def record_spend(
    campaign_id: uuid.UUID, body: SpendCreate, session: Session, principal: Writer
) -> SpendOut:
    entry = await spend.record_spend(
        session, principal.workspace_id, campaign_id, body, Actor.of(principal)
    )
    return _spend_out(entry)


@router.get(
    "/campaigns/{campaign_id}/spend",
    summary="List spend entries",
    description="The campaign's spend entries, newest recorded first.",
    response_model=Page[SpendOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_spend(
    campaign_id: uuid.UUID, session: Session, principal: Reader, paging: Paging
) -> Page[SpendOut]:
    page = await spend.list_spend(session, principal.workspace_id, campaign_id, paging)
    return Page[SpendOut](data=[_spend_out(e) for e in page.items], next_cursor=page.next_cursor)


@router.get(
    "/campaigns/{campaign_id}/budget",
    summary="Budget status",
    description=(
        "Spent vs budget: `remaining`, `spent_fraction`, `elapsed_fraction` (share of "
        "[start_at, end_at] elapsed), `pacing` (their ratio: above 1 spends ahead of plan) and "
        "`over_budget`."
    ),
    response_model=BudgetOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_budget(campaign_id: uuid.UUID, session: Session, principal: Reader) -> BudgetOut:
    found = await spend.budget_status(session, principal.workspace_id, campaign_id)
    return BudgetOut(**vars(found))
