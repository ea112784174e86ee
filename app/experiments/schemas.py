"""Request and response shapes of the experiments API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from app.core.schemas import RequestModel, ResponseModel
from app.sequences.definition import StepKey

Metric = Literal["open", "click", "reply", "conversion"]
Status = Literal["collecting", "inconclusive", "significant", "winner_declared"]

_CAMPAIGN = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b90"
_SEQUENCE = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b21"
_DECLARATION = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70"
_TIME = "2026-11-23T09:30:00Z"

_DECLARATION_EXAMPLE: dict[str, Any] = {
    "id": _DECLARATION,
    "campaign_id": _CAMPAIGN,
    "sequence_id": _SEQUENCE,
    "step_key": "welcome",
    "variant": "b",
    "metric": "click",
    "declared_by": "manual",
    "apply_to_remaining": True,
    "p_value": 0.012,
    "declared_at": _TIME,
}
_SETTINGS_EXAMPLE: dict[str, Any] = {
    "metric": "click",
    "auto_declare": True,
    "min_sample": 1000,
    "alpha": 0.05,
    "apply_to_remaining": True,
}
_VARIANT_A: dict[str, Any] = {
    "key": "a",
    "weight": 1,
    "control": True,
    "sent": 5000,
    "opened": 1500,
    "clicked": 250,
    "replied": 12,
    "converted": 40,
    "successes": 250,
    "rate": 0.05,
    "interval": {"low": 0.0443, "high": 0.0564},
    "lift": None,
    "relative_lift": None,
    "lift_interval": None,
    "p_value_fixed_horizon": None,
    "p_value": None,
    "confidence_sequence": None,
    "probability_to_beat_control": None,
}
_VARIANT_B: dict[str, Any] = {
    **_VARIANT_A,
    "key": "b",
    "control": False,
    "clicked": 320,
    "successes": 320,
    "rate": 0.064,
    "interval": {"low": 0.0575, "high": 0.0712},
    "lift": 0.014,
    "relative_lift": 0.28,
    "lift_interval": {"low": 0.0049, "high": 0.0231},
    "p_value_fixed_horizon": 0.0026,
    "p_value": 0.031,
    "confidence_sequence": {"low": 0.0009, "high": 0.0271},
    "probability_to_beat_control": 0.9987,
}


class IntervalOut(ResponseModel):
    low: float
    high: float


class VariantStats(ResponseModel):
    key: str
    weight: int
    control: bool = Field(description="The first variant of the step is the control.")
    sent: int = Field(description="Unique contacts sent this variant (the exposures).")
    opened: int
    clicked: int
    replied: int
    converted: int = Field(
        description="Exposed contacts with a campaign conversion at or after this send."
    )
    successes: int = Field(description="Exposed contacts counted by the experiment's metric.")
    rate: float | None = Field(description="`successes / sent`.")
    interval: IntervalOut | None = Field(description="95% Wilson score interval of `rate`.")
    lift: float | None = Field(description="Absolute lift over control: `rate - control rate`.")
    relative_lift: float | None = Field(description="`lift / control rate`.")
    lift_interval: IntervalOut | None = Field(
        description="FIXED-HORIZON 95% (Wald) interval of `lift`: valid for one planned look."
    )
    p_value_fixed_horizon: float | None = Field(
        description="FIXED-HORIZON two-proportion z-test: valid only for one look at a sample "
        "size fixed in advance; shown for reference."
    )
    p_value: float | None = Field(
        description="ALWAYS-VALID p-value (mSPRT, running minimum over looks): may be read at "
        "any time without inflating false positives."
    )
    confidence_sequence: IntervalOut | None = Field(
        description="ALWAYS-VALID 95% confidence sequence of `lift` (running intersection)."
    )
    probability_to_beat_control: float | None = Field(
        description="P(rate > control rate) under Beta(1 + successes, 1 + failures) posteriors."
    )


class SampleSizeOut(ResponseModel):
    mde: float = Field(description="Relative lift to detect (0.1 = +10% of control's rate).")
    alpha: float
    power: float
    baseline: float | None = Field(description="Control's observed rate.")
    per_variant: int | None = Field(
        description="Exposures per variant a fixed-horizon test needs (null without a "
        "baseline rate in (0, 1))."
    )
    remaining: int | None = Field(description="Exposures still missing on the smallest variant.")


class SettingsOut(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_SETTINGS_EXAMPLE]})

    metric: Metric
    auto_declare: bool
    min_sample: int
    alpha: float
    apply_to_remaining: bool


class DeclarationOut(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DECLARATION_EXAMPLE]})

    id: uuid.UUID
    campaign_id: uuid.UUID
    sequence_id: uuid.UUID
    step_key: str
    variant: str
    metric: Metric
    declared_by: Literal["manual", "automatic"]
    apply_to_remaining: bool
    p_value: float | None = Field(description="Always-valid p-value of the winner then.")
    declared_at: datetime


class ExperimentOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": _CAMPAIGN,
                    "step_key": "welcome",
                    "channel": "email",
                    "metric": "click",
                    "status": "significant",
                    "alpha": 0.05,
                    "control": "a",
                    "variants": [_VARIANT_A, _VARIANT_B],
                    "leader": "b",
                    "sample_size": {
                        "mde": 0.1,
                        "alpha": 0.05,
                        "power": 0.8,
                        "baseline": 0.05,
                        "per_variant": 31234,
                        "remaining": 26234,
                    },
                    "settings": _SETTINGS_EXAMPLE,
                    "winner": None,
                }
            ]
        }
    )

    campaign_id: uuid.UUID
    step_key: str
    channel: str
    metric: Metric
    status: Status = Field(
        description="`collecting` (a variant below the minimum sample), `inconclusive`, "
        "`significant` (an always-valid p-value below alpha, Bonferroni-corrected across "
        "treatments), `winner_declared`."
    )
    alpha: float
    control: str
    variants: list[VariantStats]
    leader: str | None = Field(description="The variant automatic declaration would pick now.")
    sample_size: SampleSizeOut
    settings: SettingsOut | None
    winner: DeclarationOut | None


class SettingsUpdate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_SETTINGS_EXAMPLE]})

    metric: Metric = Field(description="The metric the experiment is judged on.")
    auto_declare: bool = Field(
        True, description="Declare automatically when significant and the sample is reached."
    )
    min_sample: int = Field(
        1000, ge=1, le=100_000_000, description="Exposures every variant needs first."
    )
    alpha: float = Field(0.05, gt=0, le=0.2, allow_inf_nan=False)
    apply_to_remaining: bool = Field(
        True, description="On declaration, contacts not yet sent the step get the winner."
    )


class WinnerCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"variant": "b", "metric": "click", "apply_to_remaining": True}]
        }
    )

    variant: StepKey = Field(description="The winning variant's key.")
    metric: Metric = Field(description="The metric it won on.")
    apply_to_remaining: bool = Field(
        False, description="Contacts not yet sent the step get the winner from now on."
    )
