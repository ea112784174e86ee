"""Reports: the workspace overview (executives) and the per-campaign report (channel
managers). Scope `metrics:read`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.grammar import RangeFrom, RangeTo
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.reports import service
from app.reports.schemas import CampaignReport, Overview

router = APIRouter(prefix="/v1", tags=["Reports"])
Reader = Annotated[Principal, Caller("metrics", "read")]


@router.get(
    "/reports/overview",
    summary="Workspace business overview",
    description=(
        "For executives: every campaign live at some time in [`from`, `to`) (launched before "
        "`to`, not finished before `from`) with its figures to date: spend (sum of its spend "
        "entries, in the budget currency), revenue and conversions (the metrics definition: "
        "goal events within the goal window after a touch), cost per acquisition (spend / "
        "conversions, 2 places, null without conversions), ROI ((revenue - spend) / spend, 4 "
        "places, null without spend), budget pacing and the over-budget flag. Then the same "
        "money figures per (currency, channel) and per currency: amounts in different "
        "currencies are never added together; campaigns without a budget are grouped under "
        "currency null. Approvals: cycle time (count, mean, median, p90, min, max in seconds) "
        "of rounds approved in the range (submission -> approval) and of stages decided in it "
        "(stage start -> decision), and the first-time approval rate of campaigns whose first "
        "decided round was decided in the range. Launch variance: launched_at - "
        "planned_start_at of campaigns launched in the range. `to` defaults to now, `from` to "
        "30 days before `to`; at most 366 days; at most 500 campaigns are listed (`truncated`). "
        "Definitions: docs/reports.md."
    ),
    response_model=Overview,
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def overview(
    *,
    session: Session,
    principal: Reader,
    start: RangeFrom = None,
    end: RangeTo = None,
) -> Overview:
    return await service.overview(session, principal.workspace_id, start, end)


@router.get(
    "/campaigns/{campaign_id}/report",
    summary="Campaign report",
    description=(
        "For channel managers: the campaign's business figures (spend, revenue, conversions, "
        "CPA, ROI, budget pacing, over budget), its stats in total and per step, per step and "
        "variant, and per include segment (the metrics figures, see `/stats`), a summary of "
        "its experiments (status, leader, declared winner; details at `experiments_url`), its "
        "approval history (every round with its stages and cycle times in seconds, and "
        "whether the first decided round was approved) and its launch variance (launched_at - "
        "planned_start_at, positive when late). A campaign of another workspace is 404."
    ),
    response_model=CampaignReport,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def campaign_report(
    campaign_id: uuid.UUID, session: Session, principal: Reader
) -> CampaignReport:
    return await service.campaign_report(session, principal.workspace_id, campaign_id)
