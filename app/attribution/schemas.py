"""Attribution API shapes: the report (totals and one row per group) and its parameters."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import ConfigDict, Field

from app.core.schemas import ResponseModel

AttributionModel = Literal["first_touch", "last_touch", "linear", "position_based"]
AttributionGroupBy = Literal["campaign", "step", "variant", "channel"]

DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=366)
DEFAULT_LOOKBACK = "P30D"
MAX_LOOKBACK = timedelta(days=90)
MAX_GROUPS = 1000
# Scales of the credited figures: a conversion's credit to 6 places, revenue to 4 places (the
# scale of `events.revenue`).
CREDIT_PLACES = 6
REVENUE_PLACES = 4

_GROUP_EXAMPLE: dict[str, Any] = {
    "campaign_id": "0193a5f2-6c1d-7b3e-9f00-0000000000c1",
    "campaign_name": "Winter sale",
    "step_key": "reminder",
    "variant": "B",
    "channel": None,
    "conversions": "12.333334",
    "revenue": "1499.7000",
    "touches": 31,
}
_TOTALS_EXAMPLE: dict[str, Any] = {
    "conversions": 120,
    "attributed": 97,
    "unattributed": 23,
    "revenue": "15620.5000",
    "attributed_revenue": "12990.0000",
    "unattributed_revenue": "2630.5000",
    "touches": 301,
}


class AttributionGroup(ResponseModel):
    """Credit given to one group of touches. Keys that the grouping does not use are null."""

    model_config = ConfigDict(json_schema_extra={"examples": [_GROUP_EXAMPLE]})

    campaign_id: uuid.UUID | None = Field(description="The touches' campaign (not by `channel`).")
    campaign_name: str | None = Field(description="That campaign's name.")
    step_key: str | None = Field(description="The touches' step (`step` and `variant`).")
    variant: str | None = Field(
        description="The touches' variant (`variant`; null for a step without variants)."
    )
    channel: str | None = Field(description="The touches' channel (`channel` only).")
    conversions: Decimal = Field(
        description="Conversions credited to the group (sum of its touches' credit, 6 places)."
    )
    revenue: Decimal = Field(
        description="Revenue credited to the group (each conversion's revenue split like its "
        "credit, 4 places)."
    )
    touches: int = Field(
        description="Touches of the group on converting journeys: one per (conversion, message) "
        "pair, whether or not the model gives it credit."
    )


class AttributionTotals(ResponseModel):
    """Figures over every conversion in the range, whatever the grouping."""

    model_config = ConfigDict(json_schema_extra={"examples": [_TOTALS_EXAMPLE]})

    conversions: int = Field(description="Goal events in the range.")
    attributed: int = Field(
        description="Conversions with at least one touch in their lookback (= the sum of the "
        "groups' `conversions`, exactly, when no group is cut off)."
    )
    unattributed: int = Field(description="Conversions without any touch in their lookback.")
    revenue: Decimal = Field(description="Revenue of every conversion in the range.")
    attributed_revenue: Decimal = Field(
        description="Revenue of the attributed conversions (= the sum of the groups' `revenue`)."
    )
    unattributed_revenue: Decimal = Field(description="Revenue of the unattributed conversions.")
    touches: int = Field(description="Touches on converting journeys (sum of the groups').")


class AttributionReport(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "position_based",
                    "group_by": "variant",
                    "from": "2030-01-01T00:00:00Z",
                    "to": "2030-01-31T00:00:00Z",
                    "lookback": "P30D",
                    "totals": _TOTALS_EXAMPLE,
                    "groups": [_GROUP_EXAMPLE],
                    "groups_total": 1,
                    "truncated": False,
                }
            ]
        }
    )

    model: AttributionModel = Field(description="The attribution model applied.")
    group_by: AttributionGroupBy = Field(description="How touches are grouped.")
    from_: datetime = Field(alias="from", description="Range start (inclusive).")
    to: datetime = Field(description="Range end (exclusive).")
    lookback: str = Field(description="The lookback window before each conversion (ISO 8601).")
    totals: AttributionTotals
    groups: list[AttributionGroup] = Field(
        description=f"One row per group with touches, most credited first (at most {MAX_GROUPS})."
    )
    groups_total: int = Field(description="Number of groups before the cut-off.")
    truncated: bool = Field(description="True when groups were left off (`groups_total` larger).")
