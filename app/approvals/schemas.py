"""Request and response models of approval policies, requests and decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, model_validator

from app.campaigns.schemas import CampaignStatus, CampaignType
from app.core.schemas import DocumentedAs, RequestModel, ResponseModel, check_text

Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_text)]
RoleName = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(check_text)
]
Comment = Annotated[str, StringConstraints(max_length=5000), AfterValidator(check_text)]
DecimalString = Annotated[
    str,
    StringConstraints(pattern=r"^\d{1,16}(\.\d{1,2})?$"),
    Field(description="A non-negative amount as a decimal string, e.g. `5000.00`."),
]
Decision = Literal["approve", "reject", "request_changes"]
RequestStatus = Literal["pending", "approved", "rejected", "changes_requested", "voided"]

_MEMBER = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b10"
_STAGE: dict[str, Any] = {
    "name": "Brand",
    "reviewers": {"roles": ["brand_lead"], "members": [_MEMBER]},
    "rule": "any",
}
_LEGAL: dict[str, Any] = {"name": "Legal", "reviewers": {"roles": ["legal"]}, "rule": "all"}
_FINANCE: dict[str, Any] = {
    "name": "Finance",
    "reviewers": {"roles": ["finance"]},
    "rule": {"n_of_m": 2},
}
_GATE: dict[str, Any] = {"when": {"budget_gt": "5000.00"}, "stage": _FINANCE}
_POLICY: dict[str, Any] = {
    "name": "Standard review",
    "is_default": True,
    "stages": [_STAGE, _LEGAL],
    "gates": [_GATE, {"when": {"audience_count_gt": 100000}, "stage": _LEGAL}],
}
_TIME = "2026-11-22T09:30:00Z"


class NOfM(RequestModel):
    n_of_m: int = Field(ge=1, le=1000, description="Approvals needed from the eligible ones.")


Rule = Annotated[
    Literal["all", "any"] | NOfM,
    Field(description='`all` eligible reviewers, `any` one, or `{"n_of_m": n}`.'),
]


class Reviewers(RequestModel):
    roles: list[RoleName] = Field(
        default_factory=list,
        max_length=50,
        description="Base roles (`owner`, `admin`, `editor`, `viewer`) or reviewer role names.",
    )
    members: list[uuid.UUID] = Field(
        default_factory=list, max_length=200, description="Member ids named directly."
    )


class Stage(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_STAGE, _FINANCE]})

    name: Name
    reviewers: Reviewers
    rule: Rule = "all"

    @model_validator(mode="after")
    def _names_someone(self) -> Stage:
        if not self.reviewers.roles and not self.reviewers.members:
            raise ValueError("a stage needs reviewer roles or members")
        return self


class GateCondition(RequestModel):
    audience_count_gt: int | None = Field(
        default=None, ge=0, le=2_000_000_000, description="Applies above this audience size."
    )
    budget_gt: DecimalString | None = Field(
        default=None, description="Applies above this budget (the campaign's currency)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> GateCondition:
        if (self.audience_count_gt is None) == (self.budget_gt is None):
            raise ValueError("give exactly one of `audience_count_gt` or `budget_gt`")
        return self


class Gate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_GATE]})

    when: GateCondition
    stage: Stage = Field(description="Added after the policy's stages when the gate applies.")


class PolicyCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_POLICY]})

    name: Name
    is_default: bool = False
    stages: list[Stage] = Field(
        min_length=1, max_length=20, description="Reviewed in order; at least one."
    )
    gates: list[Gate] = Field(default_factory=list, max_length=20)


class PolicyUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Strict review", "is_default": False}]}
    )

    name: Name | None = None
    is_default: bool | None = None
    stages: list[Stage] | None = Field(
        default=None, min_length=1, max_length=20, description="At least one stage."
    )
    gates: list[Gate] | None = Field(default=None, max_length=20)


class PolicyOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b20",
                    **_POLICY,
                    "version": 1,
                    "created_at": _TIME,
                    "updated_at": _TIME,
                }
            ]
        },
    )

    id: uuid.UUID
    name: str
    is_default: bool
    stages: Annotated[list[dict[str, Any]], DocumentedAs(list[Stage])]
    gates: Annotated[list[dict[str, Any]], DocumentedAs(list[Gate])]
    version: int
    created_at: datetime
    updated_at: datetime


class DecisionCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"decision": "approve", "comment": "Copy is on brand."}]}
    )

    decision: Decision
    comment: Comment | None = None


class DecisionOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b30",
                    "stage": 0,
                    "member_id": _MEMBER,
                    "decision": "approve",
                    "comment": "Copy is on brand.",
                    "created_at": _TIME,
                }
            ]
        },
    )

    id: uuid.UUID
    stage: int
    member_id: uuid.UUID
    decision: str
    comment: str | None
    created_at: datetime


class StageOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_STAGE,
                    "eligible": [_MEMBER],
                    "required": 1,
                    "source": "policy",
                    "started_at": _TIME,
                    "completed_at": None,
                }
            ]
        }
    )

    name: str
    reviewers: dict[str, Any]
    rule: Any = Field(description='`all`, `any` or `{"n_of_m": n}`.')
    eligible: list[uuid.UUID] = Field(description="Members who may decide (fixed at open).")
    required: int = Field(description="Approvals that complete the stage.")
    source: str = Field(description="`policy` or `gate` (then `when` says why).")
    when: dict[str, Any] | None = None
    started_at: datetime | None
    completed_at: datetime | None


class SegmentRef(ResponseModel):
    id: uuid.UUID
    name: str | None
    member_count: int | None


class SequenceRef(ResponseModel):
    id: uuid.UUID
    name: str | None
    version: int | None = Field(description="The pinned version; null: latest at launch.")


class CampaignContext(ResponseModel):
    """What a reviewer needs to judge the campaign without asking."""

    id: uuid.UUID
    name: str
    description: str | None
    objective: str | None
    status: Annotated[str, DocumentedAs(CampaignStatus)]
    type: Annotated[str, DocumentedAs(CampaignType)]
    owner_member_id: uuid.UUID | None
    owner_name: str | None
    budget_amount: str | None
    budget_currency: str | None
    channels: list[str]
    start_at: datetime | None
    end_at: datetime | None
    timezone: str
    include_segments: list[SegmentRef]
    exclude_segments: list[SegmentRef]
    sequence: SequenceRef | None


_REQUEST_EXAMPLE: dict[str, Any] = {
    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b40",
    "campaign_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b50",
    "round": 1,
    "status": "pending",
    "current_stage": 0,
    "stage_started_at": _TIME,
    "created_at": _TIME,
    "decided_at": None,
    "stages": [StageOut.model_config["json_schema_extra"]["examples"][0]],  # type: ignore[index]
    "decisions": [],
    "campaign": {
        "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b50",
        "name": "Winter sale",
        "description": "Two emails and an SMS reminder.",
        "objective": "Sell winter stock",
        "status": "in_review",
        "type": "one_off",
        "owner_member_id": _MEMBER,
        "owner_name": "Dana",
        "budget_amount": "2500.00",
        "budget_currency": "EUR",
        "channels": ["email", "sms"],
        "start_at": "2026-12-01T08:00:00Z",
        "end_at": "2026-12-15T20:00:00Z",
        "timezone": "Europe/Paris",
        "include_segments": [
            {"id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b60", "name": "VIP", "member_count": 1200}
        ],
        "exclude_segments": [],
        "sequence": {"id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70", "name": "Sale", "version": 2},
    },
}


class RequestOut(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_REQUEST_EXAMPLE]})

    id: uuid.UUID
    campaign_id: uuid.UUID
    round: int
    status: Annotated[str, DocumentedAs(RequestStatus)]
    current_stage: int = Field(description="Index into `stages` of the stage under review.")
    stage_started_at: datetime
    created_at: datetime
    decided_at: datetime | None
    stages: list[StageOut]
    decisions: list[DecisionOut] = Field(description="This round's decisions, oldest first.")
    campaign: CampaignContext | None
