"""Metrics API shapes: figures (counts, unique/total, rates, revenue), breakdowns, series."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.schemas import ResponseModel

GroupBy = Literal["step", "variant", "channel", "segment"]
SeriesGroupBy = Literal["step", "variant", "channel"]
Bucket = Literal["hour", "day"]


_CAMPAIGN = "0193a5f2-6c1d-7b3e-9f00-0000000000c1"
_SEGMENT = "0193a5f2-6c1d-7b3e-9f00-00000000005e"


_RATES: dict[str, Any] = {
    "open": 0.42,
    "click": 0.08,
    "click_to_open": 0.19,
    "reply": 0.01,
    "conversion": 0.03,
    "bounce": 0.02,
    "unsubscribe": 0.004,
}


class UniqueTotal(ResponseModel):
    unique: int = Field(description="Messages with at least one (the first time counts).")
    total: int = Field(description="Every event, repeats included.")


class Rates(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_RATES]})

    open: float | None = Field(description="opened.unique / (sent - bounced).")
    click: float | None = Field(description="clicked.unique / (sent - bounced).")
    click_to_open: float | None = Field(description="clicked.unique / opened.unique.")
    reply: float | None = Field(description="replied.unique / (sent - bounced).")
    conversion: float | None = Field(
        description="converted / enrolled for a campaign total or a segment; converted / sent "
        "for step, variant and channel rows (enrollments carry no step)."
    )
    bounce: float | None = Field(description="bounced / sent.")
    unsubscribe: float | None = Field(
        description="unsubscribed / enrolled (null on step, variant and channel rows)."
    )


class Figures(ResponseModel):
    enrolled: int = Field(description="Enrollments of the campaign.")
    completed: int = Field(description="Enrollments that finished the sequence.")
    exited: int = Field(description="Enrollments that exited early (any reason).")
    unsubscribed: int = Field(description="Enrollments exited because the contact unsubscribed.")
    sent: int
    delivered: int
    bounced: int
    failed: int
    unknown: int = Field(description="Messages whose send outcome is unknowable (crash).")
    opened: UniqueTotal
    clicked: UniqueTotal
    replied: UniqueTotal
    converted: int = Field(description="Goal events credited to the campaign (docs/metrics.md).")
    revenue: Decimal = Field(description="Sum of the converting events' `revenue`.")
    rates: Rates


_FIGURES: dict[str, Any] = {
    "enrolled": 1000,
    "completed": 610,
    "exited": 12,
    "unsubscribed": 4,
    "sent": 980,
    "delivered": 960,
    "bounced": 20,
    "failed": 0,
    "unknown": 0,
    "opened": {"unique": 403, "total": 655},
    "clicked": {"unique": 77, "total": 121},
    "replied": {"unique": 9, "total": 9},
    "converted": 30,
    "revenue": "1499.70",
    "rates": _RATES,
}
FIGURES_EXAMPLE = _FIGURES  # for examples of models that embed Figures (reports)


class GroupFigures(Figures):
    step_key: str | None = Field(None, description="Set for `step` and `variant` groups.")
    variant: str | None = Field(None, description="Set for `variant` groups ('' = none).")
    channel: str | None = Field(None, description="Set for `channel` groups.")
    segment_id: uuid.UUID | None = Field(None, description="Set for `segment` groups.")


class CampaignStats(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": _CAMPAIGN,
                    "as_of": "2026-12-01T10:00:00Z",
                    "totals": _FIGURES,
                    "group_by": "variant",
                    "groups": [{**_FIGURES, "step_key": "welcome", "variant": "A"}],
                }
            ]
        }
    )

    campaign_id: uuid.UUID
    as_of: datetime
    totals: Figures
    group_by: GroupBy | None = None
    groups: list[GroupFigures] | None = Field(
        None,
        description="One row per group; rows without a step (enrollment counts) have "
        "`step_key` null.",
    )


class SeriesPoint(ResponseModel):
    start: datetime = Field(description="Start of the bucket (local midnight for days).")
    figures: Figures


class Series(ResponseModel):
    step_key: str | None = None
    variant: str | None = None
    channel: str | None = None
    points: list[SeriesPoint]


class CampaignTimeseries(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": _CAMPAIGN,
                    "bucket": "day",
                    "timezone": "Europe/Paris",
                    "from": "2026-11-30T23:00:00Z",
                    "to": "2026-12-02T23:00:00Z",
                    "group_by": None,
                    "series": [
                        {
                            "points": [
                                {"start": "2026-11-30T23:00:00Z", "figures": _FIGURES},
                                {"start": "2026-12-01T23:00:00Z", "figures": _FIGURES},
                            ]
                        }
                    ],
                }
            ]
        },
        populate_by_name=True,
    )

    campaign_id: uuid.UUID
    bucket: Bucket
    timezone: str
    from_: datetime = Field(alias="from", description="Start of the first bucket.")
    to: datetime = Field(description="End of the last bucket (exclusive).")
    group_by: SeriesGroupBy | None = None
    series: list[Series]


STATS_EVENT_EXAMPLE: dict[str, Any] = {"campaign_id": _CAMPAIGN, "totals": _FIGURES}


class StatsEvent(BaseModel):
    """Payload of a `snapshot` or `stats` server-sent event."""

    model_config = ConfigDict(json_schema_extra={"examples": [STATS_EVENT_EXAMPLE]})

    campaign_id: uuid.UUID
    totals: Figures
