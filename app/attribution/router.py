"""`GET /v1/attribution`: conversions credited to the touches of the workspace's campaigns."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.attribution import service
from app.attribution.schemas import AttributionGroupBy, AttributionModel, AttributionReport
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.grammar import RangeFrom, RangeTo
from app.core.openapi import COMMON_ERRORS, problem_responses

router = APIRouter(prefix="/v1", tags=["Attribution"])
Reader = Annotated[Principal, Caller("metrics", "read")]


@router.get(
    "/attribution",
    summary="Attribute conversions to campaign touches",
    description=(
        "Credits each conversion in [`from`, `to`) to the touches that preceded it within "
        "`lookback`, across all the workspace's campaigns. A conversion is an event whose type "
        "is some campaign's goal `event_type`; its revenue is the event's `revenue`. A touch is "
        "a campaign message to the converting contact that was delivered or clicked; its time "
        "is `delivered_at` (else `sent_at`, else `first_clicked_at`) and must lie in "
        "[conversion - `lookback`, conversion]. Models: `first_touch` and `last_touch` (all "
        "credit to one touch), `linear` (equal shares), `position_based` (40 % first, 40 % "
        "last, 20 % shared by the middle touches; 1 touch: 100 %, 2 touches: 50/50). Each "
        "conversion's credit sums to exactly 1 and its revenue is split in the same "
        "proportions: shares are truncated (credit to 6 places, revenue to 4) and the "
        "remainder goes to the last touch. `group_by` sums credit per campaign, per step, per "
        "step and variant, or per channel; totals count attributed and unattributed "
        "conversions and their revenue. `to` defaults to now, `from` to 30 days before `to`; "
        "the range spans at most 366 days and at most 1,000 groups are returned (most credited "
        "first). Method and sources: docs/attribution.md."
    ),
    response_model=AttributionReport,
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def attribution(
    *,
    session: Session,
    principal: Reader,
    model: Annotated[
        AttributionModel, Query(description="How credit is split among the touches.")
    ] = "last_touch",
    group_by: Annotated[
        AttributionGroupBy, Query(description="What the credit is summed by.")
    ] = "campaign",
    start: RangeFrom = None,
    end: RangeTo = None,
    lookback: Annotated[
        str | None,
        Query(
            max_length=32,
            description="ISO 8601 duration before each conversion in which touches count "
            "(weeks, days, hours, minutes, seconds; at most `P90D`). Default `P30D`.",
            examples=["P30D"],
        ),
    ] = None,
) -> AttributionReport:
    return await service.attribution_report(
        session,
        principal.workspace_id,
        model=model,
        group_by=group_by,
        start=start,
        end=end,
        lookback=lookback,
    )
