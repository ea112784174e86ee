"""Request and response shapes of the campaigns API (resource, transitions, spend, budget)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from app.core.grammar import Duration, Timezone
from app.core.schemas import (
    DocumentedAs,
    Instant,
    RequestModel,
    ResponseModel,
    check_storable_json,
    check_text,
)

CampaignStatus = Literal[
    "draft",
    "in_review",
    "approved",
    "scheduled",
    "running",
    "paused",
    "completed",
    "cancelled",
    "archived",
]
CampaignType = Literal["one_off", "triggered"]
CampaignChannel = Literal["email", "sms"]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_text)]
Text = Annotated[str, StringConstraints(max_length=5000), AfterValidator(check_text)]
Objective = Annotated[str, StringConstraints(max_length=500), AfterValidator(check_text)]
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$"),
    AfterValidator(check_text),
]
EventType = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_text)
]
# ISO 4217: three uppercase letters (the list of live codes changes; the shape is enough).
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=2)]
ChannelSlug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,15}$")]

_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b90"
_SEGMENT = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b11"
_EXCLUDED = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b12"
_SEQUENCE = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b21"
_MEMBER = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b31"
_TIME = "2026-11-22T09:30:00Z"
_START = "2026-12-01T08:00:00Z"
_END = "2026-12-31T23:00:00Z"
_CREATE: dict[str, Any] = {
    "name": "Winter sale",
    "description": "Three emails to lapsed buyers.",
    "objective": "Win back lapsed buyers before the holidays",
    "goal": {"event_type": "purchase", "window": "P7D"},
    "kpis": [{"metric": "conversion_rate", "target": 0.05}],
    "channels": ["email"],
    "include_segments": [_SEGMENT],
    "exclude_segments": [_EXCLUDED],
    "sequence_id": _SEQUENCE,
    "type": "one_off",
    "timezone": "Europe/Paris",
    "start_at": _START,
    "end_at": _END,
    "budget": {"amount": "5000.00", "currency": "EUR"},
    "owner_member_id": _MEMBER,
    "tags": ["q4", "winback"],
}
_TRIGGERED: dict[str, Any] = {
    "name": "Welcome series",
    "channels": ["email", "sms"],
    "sequence_id": _SEQUENCE,
    "type": "triggered",
    "trigger": {"kind": "event", "event_type": "signup", "where": []},
    "reentry": {"policy": "once_per", "days": 30},
    "start_at": _START,
}


class Goal(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"event_type": "purchase", "window": "P7D"}]}
    )

    event_type: EventType = Field(description="The conversion event type.")
    window: Duration = Field(description="Attribution window, ISO 8601 (`P7D`).")


class Kpi(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"metric": "conversion_rate", "target": 0.05}]}
    )

    metric: Annotated[
        str, StringConstraints(min_length=1, max_length=100), AfterValidator(check_text)
    ]
    target: float = Field(allow_inf_nan=False, description="The target value of the metric.")


class Budget(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": "5000.00", "currency": "EUR"}]}
    )

    amount: Money = Field(ge=0, description="Decimal string or number, two decimals at most.")
    currency: Currency = Field(description="ISO 4217 code, e.g. `EUR`.")


class CampaignBudget(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": "5000.00", "currency": "EUR"}]}
    )

    amount: str = Field(pattern=r"^\d+\.\d{2}$", description="Decimal string, two decimals.")
    currency: str = Field(description="ISO 4217 code, e.g. `EUR`.")


class SegmentEntryTrigger(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "segment_entry", "segment_id": _SEGMENT}]}
    )

    kind: Literal["segment_entry"]
    segment_id: uuid.UUID


class EventTrigger(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "event",
                    "event_type": "purchase",
                    "where": [{"path": "sku", "op": "eq", "value": "A-1"}],
                }
            ]
        }
    )

    kind: Literal["event"]
    event_type: EventType
    where: Annotated[list[dict[str, Any]], AfterValidator(check_storable_json)] = Field(
        default_factory=list,
        max_length=20,
        description="Optional property filters, as in segment event conditions.",
    )


Trigger = Annotated[SegmentEntryTrigger | EventTrigger, Field(discriminator="kind")]


class Reentry(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"policy": "once"}, {"policy": "once_per", "days": 30}]}
    )

    policy: Literal["once", "once_per", "always"] = Field(
        description="`once`: a contact enters once; `once_per`: again after `days`; `always`."
    )
    days: int | None = Field(None, ge=1, le=3650, description="Required for `once_per`.")


class _CampaignFields(RequestModel):
    name: Name | None = None
    description: Text | None = None
    objective: Objective | None = None
    goal: Goal | None = None
    kpis: list[Kpi] | None = Field(None, max_length=20)
    channels: list[CampaignChannel] | None = Field(None, max_length=2)
    include_segments: list[uuid.UUID] | None = Field(None, max_length=50)
    exclude_segments: list[uuid.UUID] | None = Field(None, max_length=50)
    sequence_id: uuid.UUID | None = None
    sequence_version: int | None = Field(
        None, ge=1, le=2_147_483_647, description="A published version; latest when null."
    )
    type: CampaignType | None = None
    trigger: Trigger | None = None
    reentry: Reentry | None = None
    timezone: Timezone | None = Field(None, description="IANA timezone of the schedule.")
    start_at: Instant | None = None
    end_at: Instant | None = None
    budget: Budget | None = None
    owner_member_id: uuid.UUID | None = None
    tags: list[Tag] | None = Field(None, max_length=50)
    approval_policy_id: uuid.UUID | None = Field(
        None, description="Overrides the workspace's default approval policy."
    )


class CampaignCreate(_CampaignFields):
    model_config = ConfigDict(json_schema_extra={"examples": [_CREATE, _TRIGGERED]})

    name: Name
    type: CampaignType = "one_off"


class CampaignUpdate(_CampaignFields):
    """Every field optional; `null` clears an optional field (name and type cannot be null)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "Winter sale (EU)", "tags": ["q4"]}, {"end_at": _END}]
        }
    )


class GoalOut(ResponseModel):
    event_type: str
    window: Duration


class CampaignOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_CREATE,
                    "id": _ID,
                    "sequence_version": None,
                    "sequence_version_id": None,
                    "trigger": None,
                    "reentry": {"policy": "once"},
                    "approval_policy_id": None,
                    "status": "running",
                    "allowed_transitions": ["pause", "cancel", "complete"],
                    "approval_round": 1,
                    "version": 4,
                    "etag": f'"{_ID}.4"',
                    "planned_start_at": _START,
                    "launched_at": "2026-12-01T08:00:02Z",
                    "variance_seconds": 2.0,
                    "enrolled_count": 48211,
                    "finished_at": None,
                    "archived_at": None,
                    "created_at": _TIME,
                    "updated_at": _TIME,
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    description: str | None
    objective: str | None
    goal: Annotated[dict[str, Any] | None, DocumentedAs(Goal | None)] = Field(
        description="`event_type` and ISO 8601 `window`."
    )
    kpis: Annotated[list[dict[str, Any]], DocumentedAs(list[Kpi])]
    channels: Annotated[list[str], DocumentedAs(list[CampaignChannel])]
    include_segments: list[uuid.UUID]
    exclude_segments: list[uuid.UUID]
    sequence_id: uuid.UUID | None
    sequence_version: int | None
    sequence_version_id: uuid.UUID | None = Field(description="The version pinned at schedule.")
    type: CampaignType
    trigger: Annotated[dict[str, Any] | None, DocumentedAs(Trigger | None)]
    reentry: Annotated[dict[str, Any], DocumentedAs(Reentry)]
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    budget: Annotated[dict[str, Any] | None, DocumentedAs(CampaignBudget | None)] = Field(
        description="`amount` (decimal string), `currency`."
    )
    owner_member_id: uuid.UUID | None
    tags: list[str]
    approval_policy_id: uuid.UUID | None
    status: CampaignStatus
    allowed_transitions: list[str] = Field(description="Transition endpoints allowed now.")
    approval_round: int = Field(description="Bumped by every submit.")
    version: int = Field(description="Bumped by every change; the `ETag` derives from it.")
    etag: str
    planned_start_at: datetime | None = Field(description="Start planned when scheduled.")
    launched_at: datetime | None = Field(description="When the launch actually ran.")
    variance_seconds: float | None = Field(description="`launched_at - planned_start_at`.")
    enrolled_count: int | None
    finished_at: datetime | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ResumeRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"overdue": "send_now"}, {"overdue": "skip"}]}
    )

    overdue: Literal["send_now", "skip"] = Field(
        "send_now", description="Steps that fell due during the pause: send now, or skip them."
    )


class SpendCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "amount": "120.50",
                    "currency": "EUR",
                    "date": "2026-12-02",
                    "channel": "email",
                    "note": "ESP invoice #42",
                }
            ]
        }
    )

    amount: Money = Field(gt=0)
    currency: Currency = Field(description="Must equal the campaign budget's currency.")
    date: date
    channel: ChannelSlug | None = Field(None, description="`email`, `sms`, `paid_social`, ...")
    note: Annotated[str, StringConstraints(max_length=1000), AfterValidator(check_text)] | None = (
        None
    )


class SpendOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b41",
                    "campaign_id": _ID,
                    "amount": "120.50",
                    "currency": "EUR",
                    "date": "2026-12-02",
                    "channel": "email",
                    "note": "ESP invoice #42",
                    "created_at": _TIME,
                }
            ]
        }
    )

    id: uuid.UUID
    campaign_id: uuid.UUID
    amount: Decimal
    currency: str
    date: date
    channel: str | None
    note: str | None
    created_at: datetime


class BudgetOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": _ID,
                    "currency": "EUR",
                    "budget": "5000.00",
                    "spent": "1500.00",
                    "remaining": "3500.00",
                    "spent_fraction": 0.3,
                    "elapsed_fraction": 0.25,
                    "pacing": 1.2,
                    "over_budget": False,
                }
            ]
        }
    )

    campaign_id: uuid.UUID
    currency: str | None
    budget: Decimal | None
    spent: Decimal
    remaining: Decimal | None = Field(description="`budget - spent` (negative when over).")
    spent_fraction: float | None = Field(description="`spent / budget`; null without a budget.")
    elapsed_fraction: float | None = Field(
        description="Share of [start, end] elapsed, clamped to 0..1; null without both dates."
    )
    pacing: float | None = Field(
        description="`spent_fraction / elapsed_fraction`: above 1 spends faster than planned."
    )
    over_budget: bool
