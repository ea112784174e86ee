"""Reports API shapes: business figures, approval and launch-variance summaries, the
workspace overview and the per-campaign report. Money is a decimal string; durations are
seconds (decimal, to the millisecond)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from app.approvals.schemas import RequestStatus
from app.campaigns.schemas import CampaignStatus
from app.core.schemas import DocumentedAs, ResponseModel
from app.experiments.schemas import Status as ExperimentStatus
from app.metrics.schemas import FIGURES_EXAMPLE, Figures, GroupFigures

_CAMPAIGN = "0193a5f2-6c1d-7b3e-9f00-0000000000c1"
_REQUEST = "0193a5f2-6c1d-7b3e-9f00-0000000000a1"

_BUSINESS: dict[str, Any] = {
    "currency": "EUR",
    "budget": "5000.00",
    "spend": "1200.00",
    "remaining": "3800.00",
    "revenue": "4500.0000",
    "conversions": 30,
    "cpa": "40.00",
    "roi": "2.7500",
    "spent_fraction": 0.24,
    "elapsed_fraction": 0.3,
    "pacing": 0.8,
    "over_budget": False,
}
_SUMMARY: dict[str, Any] = {
    "count": 4,
    "mean": "5400.000",
    "median": "3600.000",
    "p90": "10800.000",
    "min": "1800.000",
    "max": "12600.000",
}
_MONEY: dict[str, Any] = {
    "currency": "EUR",
    "revenue": "4500.0000",
    "spend": "1200.00",
    "conversions": 30,
    "cpa": "40.00",
    "roi": "2.7500",
}


class BusinessFigures(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_BUSINESS]})

    currency: str | None = Field(
        description="The budget's currency; spend and revenue are taken to be in it (events "
        "carry no currency). Null for a campaign without a budget."
    )
    budget: Decimal | None
    spend: Decimal = Field(description="Sum of the campaign's spend entries.")
    remaining: Decimal | None = Field(description="budget - spend (negative when over).")
    revenue: Decimal = Field(description="Revenue of the campaign's conversions (metrics).")
    conversions: int = Field(description="Conversions credited to the campaign (metrics).")
    cpa: Decimal | None = Field(
        description="Cost per acquisition: spend / conversions, rounded half-up to 2 places; "
        "null when there is no conversion."
    )
    roi: Decimal | None = Field(
        description="(revenue - spend) / spend, rounded half-up to 4 places; null when "
        "nothing was spent."
    )
    spent_fraction: float | None = Field(description="spend / budget.")
    elapsed_fraction: float | None = Field(description="Share of start_at..end_at elapsed.")
    pacing: float | None = Field(
        description="spent_fraction / elapsed_fraction: 1.0 on plan, above 1 spending faster."
    )
    over_budget: bool


class DurationSummary(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_SUMMARY]})

    count: int
    mean: Decimal | None = Field(description="Seconds; null when count is 0.")
    median: Decimal | None = Field(description="Seconds (linear interpolation).")
    p90: Decimal | None = Field(description="Seconds (linear interpolation).")
    min: Decimal | None
    max: Decimal | None


class StageSummary(ResponseModel):
    name: str = Field(description="Stage name (stages of different rounds with one name pool).")
    cycle: DurationSummary


class FirstTimeApproval(ResponseModel):
    campaigns: int = Field(description="Campaigns whose first decided round was decided in range.")
    approved_first_time: int
    rate: Decimal | None = Field(description="approved_first_time / campaigns (4 places).")


class ApprovalSummary(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "overall": _SUMMARY,
                    "stages": [{"name": "Brand", "cycle": _SUMMARY}],
                    "first_time_approval": {
                        "campaigns": 4,
                        "approved_first_time": 3,
                        "rate": "0.7500",
                    },
                }
            ]
        }
    )

    overall: DurationSummary = Field(
        description="Rounds approved in range: submission -> approval."
    )
    stages: list[StageSummary] = Field(
        description="Stages decided in range: stage start -> stage decided, by stage name."
    )
    first_time_approval: FirstTimeApproval


class MoneyFigures(ResponseModel):
    currency: str | None
    revenue: Decimal
    spend: Decimal
    conversions: int
    cpa: Decimal | None
    roi: Decimal | None


class ChannelFigures(MoneyFigures):
    channel: str | None = Field(
        description="Conversions credited to the channel's touches; spend entries recorded "
        "with that channel. Null: spend entries without a channel."
    )


class CurrencyTotals(MoneyFigures):
    campaigns: int


class OverviewCampaign(ResponseModel):
    campaign_id: uuid.UUID
    name: str
    status: Annotated[str, DocumentedAs(CampaignStatus)]
    launched_at: datetime | None
    finished_at: datetime | None
    figures: BusinessFigures


class Overview(ResponseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "from": "2030-01-01T00:00:00Z",
                    "to": "2030-02-01T00:00:00Z",
                    "as_of": "2030-02-01T08:00:00Z",
                    "campaigns": [
                        {
                            "campaign_id": _CAMPAIGN,
                            "name": "Winter sale",
                            "status": "running",
                            "launched_at": "2030-01-05T09:00:00Z",
                            "finished_at": None,
                            "figures": _BUSINESS,
                        }
                    ],
                    "channels": [{**_MONEY, "channel": "email"}],
                    "totals": [{**_MONEY, "campaigns": 1}],
                    "approvals": {
                        "overall": _SUMMARY,
                        "stages": [{"name": "Brand", "cycle": _SUMMARY}],
                        "first_time_approval": {
                            "campaigns": 4,
                            "approved_first_time": 3,
                            "rate": "0.7500",
                        },
                    },
                    "launch_variance": _SUMMARY,
                    "truncated": False,
                }
            ]
        },
    )

    from_: datetime = Field(alias="from")
    to: datetime
    as_of: datetime
    campaigns: list[OverviewCampaign] = Field(
        description="Campaigns live at some time in the range (launched before `to`, not "
        "finished before `from`), with their figures to date."
    )
    channels: list[ChannelFigures] = Field(description="Per (currency, channel).")
    totals: list[CurrencyTotals] = Field(description="One row per currency, never summed across.")
    approvals: ApprovalSummary
    launch_variance: DurationSummary = Field(
        description="Campaigns launched in range with a planned start: launched_at - "
        "planned_start_at (positive: late)."
    )
    truncated: bool = Field(description="More campaigns were live than are listed (limit).")


class StageCycle(ResponseModel):
    name: str
    started_at: datetime | None
    decided_at: datetime | None
    cycle_seconds: Decimal | None


class ApprovalRound(ResponseModel):
    request_id: uuid.UUID
    round: int
    status: Annotated[str, DocumentedAs(RequestStatus)]
    submitted_at: datetime
    decided_at: datetime | None
    cycle_seconds: Decimal | None = Field(description="Submission -> decision of the round.")
    stages: list[StageCycle]


class ApprovalHistory(ResponseModel):
    rounds: list[ApprovalRound]
    first_time_approved: bool | None = Field(
        description="Whether the first decided round was approved; null before any decision."
    )


class LaunchVariance(ResponseModel):
    planned_start_at: datetime | None
    launched_at: datetime | None
    seconds: Decimal | None = Field(description="launched_at - planned_start_at (late > 0).")


class ExperimentBrief(ResponseModel):
    step_key: str
    metric: str
    status: Annotated[str, DocumentedAs(ExperimentStatus)]
    leader: str | None
    winner: str | None


class CampaignStatsBreakdown(ResponseModel):
    totals: Figures
    steps: list[GroupFigures]
    variants: list[GroupFigures]
    segments: list[GroupFigures]


class CampaignReport(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": _CAMPAIGN,
                    "name": "Winter sale",
                    "status": "running",
                    "as_of": "2030-02-01T08:00:00Z",
                    "figures": _BUSINESS,
                    "stats": {
                        "totals": FIGURES_EXAMPLE,
                        "steps": [],
                        "variants": [],
                        "segments": [],
                    },
                    "experiments": [
                        {
                            "step_key": "welcome",
                            "metric": "click",
                            "status": "significant",
                            "leader": "b",
                            "winner": None,
                        }
                    ],
                    "experiments_url": f"/v1/campaigns/{_CAMPAIGN}/experiments",
                    "approvals": {
                        "rounds": [
                            {
                                "request_id": _REQUEST,
                                "round": 1,
                                "status": "approved",
                                "submitted_at": "2030-01-02T09:00:00Z",
                                "decided_at": "2030-01-02T14:00:00Z",
                                "cycle_seconds": "18000.000",
                                "stages": [
                                    {
                                        "name": "Brand",
                                        "started_at": "2030-01-02T09:00:00Z",
                                        "decided_at": "2030-01-02T11:00:00Z",
                                        "cycle_seconds": "7200.000",
                                    }
                                ],
                            }
                        ],
                        "first_time_approved": True,
                    },
                    "launch_variance": {
                        "planned_start_at": "2030-01-05T09:00:00Z",
                        "launched_at": "2030-01-05T09:00:02Z",
                        "seconds": "2.000",
                    },
                }
            ]
        }
    )

    campaign_id: uuid.UUID
    name: str
    status: Annotated[str, DocumentedAs(CampaignStatus)]
    as_of: datetime
    figures: BusinessFigures
    stats: CampaignStatsBreakdown
    experiments: list[ExperimentBrief]
    experiments_url: str
    approvals: ApprovalHistory
    launch_variance: LaunchVariance
