"""Business reports (docs/reports.md): money figures per campaign from spend entries and the
metrics reads, approval cycle times, first-time approval rate and launch variance; the
workspace overview and the per-campaign report. Reads only; never commits."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.attribution.service import resolve_range
from app.campaigns import service as campaigns
from app.campaigns import spend
from app.core.clock import utcnow
from app.experiments import service as experiments
from app.metrics import service as metrics
from app.reports import figures as calc
from app.reports.repository import DECIDED, ReportRepository
from app.reports.schemas import (
    ApprovalHistory,
    ApprovalRound,
    ApprovalSummary,
    BusinessFigures,
    CampaignReport,
    CampaignStatsBreakdown,
    ChannelFigures,
    CurrencyTotals,
    DurationSummary,
    ExperimentBrief,
    FirstTimeApproval,
    LaunchVariance,
    Overview,
    OverviewCampaign,
    StageCycle,
    StageSummary,
)

if TYPE_CHECKING:
    from app.approvals.models import ApprovalRequest
    from app.campaigns.models import Campaign
    from app.metrics.schemas import Figures, GroupFigures

ZERO_MONEY = Decimal("0.00")
MAX_CAMPAIGNS = 500  # campaigns listed by the overview (one metrics read each)


def business_figures(
    campaign: Campaign, spent: Decimal, totals: Figures, now: datetime
) -> BusinessFigures:
    """Spend and pacing from `app.campaigns.spend`, revenue and conversions from the metrics
    totals, CPA and ROI from both."""
    budget = spend.compute(campaign, spent, now)
    return BusinessFigures(
        currency=budget.currency,
        budget=budget.budget,
        spend=budget.spent,
        remaining=budget.remaining,
        revenue=totals.revenue,
        conversions=totals.converted,
        cpa=calc.cost_per_acquisition(budget.spent, totals.converted),
        roi=calc.roi(totals.revenue, budget.spent),
        spent_fraction=budget.spent_fraction,
        elapsed_fraction=budget.elapsed_fraction,
        pacing=budget.pacing,
        over_budget=budget.over_budget,
    )


def _duration(summary: calc.Summary) -> DurationSummary:
    return DurationSummary(
        count=summary.count,
        mean=summary.mean,
        median=summary.median,
        p90=summary.p90,
        min=summary.min,
        max=summary.max,
    )


def _instant(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _seconds(start: datetime | None, end: datetime | None) -> Decimal | None:
    if start is None or end is None:
        return None
    return calc.seconds_between(start, end).quantize(calc.SECONDS)


# --- overview ------------------------------------------------------------------------------


@dataclass
class _Money:
    revenue: Decimal = Decimal(0)
    spend: Decimal = ZERO_MONEY
    conversions: int = 0
    campaigns: int = 0

    def fields(self) -> dict[str, Any]:
        return {
            "revenue": self.revenue,
            "spend": self.spend,
            "conversions": self.conversions,
            "cpa": calc.cost_per_acquisition(self.spend, self.conversions),
            "roi": calc.roi(self.revenue, self.spend),
        }


def _order(key: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, value or "") for value in key)


async def overview(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Overview:
    """Campaigns live in [from, to) with their business figures to date, per channel and per
    currency; approval and launch-variance summaries of what happened in the range."""
    start, end = resolve_range(start, end)
    now = utcnow()
    repo = ReportRepository(session, workspace_id)
    live = await repo.live_campaigns(start, end, MAX_CAMPAIGNS)
    truncated = len(live) > MAX_CAMPAIGNS
    live = live[:MAX_CAMPAIGNS]
    spent: dict[uuid.UUID, Decimal] = defaultdict(lambda: ZERO_MONEY)
    channels: dict[tuple[str | None, str | None], _Money] = defaultdict(_Money)
    totals: dict[str | None, _Money] = defaultdict(_Money)
    by_id = {c.id: c for c in live}
    for campaign_id, channel, amount in await repo.spend(list(by_id)):
        spent[campaign_id] += amount
        channels[(by_id[campaign_id].budget_currency, channel)].spend += amount
    rows: list[OverviewCampaign] = []
    for campaign in live:
        stats = await metrics.campaign_stats(session, workspace_id, campaign.id, "channel")
        figures = business_figures(campaign, spent[campaign.id], stats.totals, now)
        rows.append(
            OverviewCampaign(
                campaign_id=campaign.id,
                name=campaign.name,
                status=campaign.status,
                launched_at=campaign.launched_at,
                finished_at=campaign.finished_at,
                figures=figures,
            )
        )
        total = totals[figures.currency]
        total.revenue += figures.revenue
        total.spend += figures.spend
        total.conversions += figures.conversions
        total.campaigns += 1
        for group in stats.groups or []:
            if group.channel is None or (group.converted == 0 and group.revenue == 0):
                continue
            money = channels[(figures.currency, group.channel)]
            money.revenue += group.revenue
            money.conversions += group.converted
    return Overview(
        from_=start,
        to=end,
        as_of=now,
        campaigns=rows,
        channels=[
            ChannelFigures(
                currency=currency, channel=channel, **channels[(currency, channel)].fields()
            )
            for currency, channel in sorted(channels, key=_order)
        ],
        totals=[
            CurrencyTotals(
                currency=currency, campaigns=totals[currency].campaigns, **totals[currency].fields()
            )
            for currency in sorted(totals, key=lambda c: _order((c,)))
        ],
        approvals=await approval_summary(session, workspace_id, start, end),
        launch_variance=await launch_variance_summary(session, workspace_id, start, end),
        truncated=truncated,
    )


async def approval_summary(
    session: AsyncSession, workspace_id: uuid.UUID, start: datetime, end: datetime
) -> ApprovalSummary:
    """Cycle times of rounds approved and stages decided in [start, end), and the first-time
    approval rate of campaigns whose first decided round was decided in it."""
    repo = ReportRepository(session, workspace_id)
    overall: list[Decimal] = []
    per_stage: dict[str, list[Decimal]] = defaultdict(list)
    for request in await repo.rounds_touching(start, end):
        decided = request.decided_at
        approved = request.status == "approved" and bool(request.stages)
        if approved and decided is not None and start <= decided < end:
            overall.append(calc.seconds_between(request.created_at, decided))
        for stage in request.stages:
            begun, done = _instant(stage.get("started_at")), _instant(stage.get("completed_at"))
            if begun is not None and done is not None and start <= done < end:
                per_stage[str(stage.get("name"))].append(calc.seconds_between(begun, done))
    firsts = await repo.first_decided_rounds(start, end)
    approved_first = sum(1 for _, status in firsts if status == "approved")
    return ApprovalSummary(
        overall=_duration(calc.summarize(overall)),
        stages=[
            StageSummary(name=name, cycle=_duration(calc.summarize(per_stage[name])))
            for name in sorted(per_stage)
        ],
        first_time_approval=FirstTimeApproval(
            campaigns=len(firsts),
            approved_first_time=approved_first,
            rate=calc.rate(approved_first, len(firsts)),
        ),
    )


async def launch_variance_summary(
    session: AsyncSession, workspace_id: uuid.UUID, start: datetime, end: datetime
) -> DurationSummary:
    launches = await ReportRepository(session, workspace_id).launches(start, end)
    values = [calc.seconds_between(planned, actual) for _, planned, actual in launches]
    return _duration(calc.summarize(values))


# --- per campaign --------------------------------------------------------------------------


def _round(request: ApprovalRequest) -> ApprovalRound:
    stages = []
    for stage in request.stages:
        begun, done = _instant(stage.get("started_at")), _instant(stage.get("completed_at"))
        stages.append(
            StageCycle(
                name=str(stage.get("name")),
                started_at=begun,
                decided_at=done,
                cycle_seconds=_seconds(begun, done),
            )
        )
    return ApprovalRound(
        request_id=request.id,
        round=request.round,
        status=request.status,
        submitted_at=request.created_at,
        decided_at=request.decided_at,
        cycle_seconds=_seconds(request.created_at, request.decided_at),
        stages=stages,
    )


def _first_time(rounds: Iterable[ApprovalRequest]) -> bool | None:
    for request in rounds:
        if request.status in DECIDED and request.stages:
            return request.status == "approved"
    return None


def _message_rows(groups: list[GroupFigures] | None) -> list[GroupFigures]:
    """Breakdown rows of messages (the enrollment-only row has no step; totals carry it)."""
    return [g for g in groups or [] if g.step_key is not None or g.channel is not None]


async def campaign_report(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: uuid.UUID
) -> CampaignReport:
    campaign = await campaigns.get_campaign(session, workspace_id, campaign_id)
    now = utcnow()
    steps = await metrics.campaign_stats(session, workspace_id, campaign.id, "step")
    variants = await metrics.campaign_stats(session, workspace_id, campaign.id, "variant")
    segments = await metrics.campaign_stats(session, workspace_id, campaign.id, "segment")
    budget = await spend.budget_status(session, workspace_id, campaign.id)
    found = await experiments.list_experiments(
        session, workspace_id, campaign.id, experiments.ReportQuery()
    )
    rounds = await ReportRepository(session, workspace_id).rounds_of(campaign.id)
    return CampaignReport(
        campaign_id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        as_of=now,
        figures=business_figures(campaign, budget.spent, steps.totals, now),
        stats=CampaignStatsBreakdown(
            totals=steps.totals,
            steps=_message_rows(steps.groups),
            variants=_message_rows(variants.groups),
            segments=segments.groups or [],
        ),
        experiments=[
            ExperimentBrief(
                step_key=item.step_key,
                metric=item.metric,
                status=item.status,
                leader=item.leader,
                winner=item.winner.variant if item.winner else None,
            )
            for item in found
        ],
        experiments_url=f"/v1/campaigns/{campaign.id}/experiments",
        approvals=ApprovalHistory(
            rounds=[_round(r) for r in rounds], first_time_approved=_first_time(rounds)
        ),
        launch_variance=LaunchVariance(
            planned_start_at=campaign.planned_start_at,
            launched_at=campaign.launched_at,
            seconds=_seconds(campaign.planned_start_at, campaign.launched_at),
        ),
    )
