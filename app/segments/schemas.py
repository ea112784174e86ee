from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.core.normalize import normalize_email
from app.core.schemas import RequestModel, ResponseModel, check_storable_json, check_text
from app.segments.rules import RULE_EXAMPLES

Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_text)]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(check_text)]
Kind = Literal["dynamic", "static"]
MAX_MEMBER_REFERENCES = 1000
MAX_SAMPLE = 100

_TIME = "2026-11-22T09:30:00Z"
_SEGMENT_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70"
_CONTACT_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b71"
_RULE: Any = RULE_EXAMPLES[1]
_RULE_SIMPLE: Any = RULE_EXAMPLES[0]
_RULES: Any = RULE_EXAMPLES

RULE_DESCRIPTION = (
    "A rule tree (see docs/segments-rules.md): every node is an object with one key, "
    "`all` / `any` / `not`, `attribute`, `event`, `consent` or `segment`. Invalid rules answer "
    "422 with a JSON pointer (under `/rule`) to each failing node."
)


def _storable_rule(value: Any) -> Any:
    """Rules nest deeper than content; the rule language itself is checked by `parse_rule`."""
    return check_storable_json(value, max_depth=64)


RuleJson = Annotated[
    dict[str, Any],
    AfterValidator(_storable_rule),
    Field(description=RULE_DESCRIPTION, json_schema_extra={"examples": _RULES}),
]


class SegmentCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Engaged pro and team accounts",
                    "description": "Clicked this week, no reply this month.",
                    "kind": "dynamic",
                    "rule": _RULE,
                },
                {"name": "Webinar VIPs", "kind": "static"},
            ]
        }
    )

    name: Name
    description: Description | None = None
    kind: Kind = Field(
        "dynamic",
        description="`dynamic`: members follow the rule. `static`: members are added by hand.",
    )
    rule: RuleJson | None = Field(None, description="Required for dynamic, absent for static.")


class SegmentUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Engaged accounts (EU)"},
                {"rule": _RULE_SIMPLE},
            ]
        }
    )

    name: Name | None = None
    description: Description | None = None
    rule: RuleJson | None = Field(None, description="Dynamic segments only; bumps `version`.")


class SegmentOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": _SEGMENT_ID,
                    "name": "Engaged pro and team accounts",
                    "description": "Clicked this week, no reply this month.",
                    "kind": "dynamic",
                    "rule": _RULE,
                    "version": 3,
                    "etag": f'"{_SEGMENT_ID}.3"',
                    "member_count": 1284,
                    "refreshed_at": _TIME,
                    "created_at": _TIME,
                    "updated_at": _TIME,
                }
            ]
        },
    )

    id: uuid.UUID
    name: str
    description: str | None
    kind: Kind
    rule: dict[str, Any] | None
    version: int = Field(description="Bumped by every edit; the `ETag` is derived from it.")
    etag: str = Field(description="The current `ETag`, for `If-Match` on edits.")
    member_count: int = Field(description="Members in the membership table right now.")
    refreshed_at: datetime | None = Field(
        description="Last full re-evaluation of a dynamic segment (null until the first)."
    )
    created_at: datetime
    updated_at: datetime


class PreviewRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"rule": _RULE, "sample_size": 5}]})

    rule: RuleJson
    sample_size: int = Field(10, ge=0, le=MAX_SAMPLE, description="Contacts to show (0-100).")


class ContactSample(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [{"id": _CONTACT_ID, "email": "ana@acme.example", "external_id": "u-42"}]
        },
    )

    id: uuid.UUID
    email: str | None
    external_id: str | None


class PreviewOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "count": 1284,
                    "sample": [
                        {"id": _CONTACT_ID, "email": "ana@acme.example", "external_id": "u-42"}
                    ],
                    "computed_at": _TIME,
                }
            ]
        }
    )

    count: int
    sample: list[ContactSample]
    computed_at: datetime


class CountOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment_id": _SEGMENT_ID,
                    "count": 1290,
                    "source": "live",
                    "computed_at": _TIME,
                }
            ]
        }
    )

    segment_id: uuid.UUID
    count: int
    source: Literal["live", "membership"] = Field(
        description="`live`: the rule evaluated now (dynamic). `membership`: explicit members."
    )
    computed_at: datetime


class SegmentMemberOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "contact_id": _CONTACT_ID,
                    "email": "ana@acme.example",
                    "external_id": "u-42",
                    "entered_at": _TIME,
                }
            ]
        },
    )

    contact_id: uuid.UUID
    email: str | None
    external_id: str | None
    entered_at: datetime


ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(check_text)
]
EmailRef = Annotated[
    str, StringConstraints(min_length=1, max_length=320), AfterValidator(check_text)
]


class MemberReferences(RequestModel):
    """Contacts named by id, external id or email; up to 1,000 references in all."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "contact_ids": [_CONTACT_ID],
                    "external_ids": ["u-42", "u-43"],
                    "emails": ["ana@acme.example"],
                }
            ]
        }
    )

    contact_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_MEMBER_REFERENCES)
    external_ids: list[ExternalId] = Field(default_factory=list, max_length=MAX_MEMBER_REFERENCES)
    emails: list[EmailRef] = Field(default_factory=list, max_length=MAX_MEMBER_REFERENCES)

    @field_validator("emails")
    @classmethod
    def _normalise(cls, value: list[str]) -> list[str]:
        return [normalize_email(email) for email in value]

    @model_validator(mode="after")
    def _bounded(self) -> MemberReferences:
        total = len(self.contact_ids) + len(self.external_ids) + len(self.emails)
        if total == 0:
            raise ValueError("name at least one contact in contact_ids, external_ids or emails")
        if total > MAX_MEMBER_REFERENCES:
            raise ValueError(f"at most {MAX_MEMBER_REFERENCES} references in one request")
        return self


class NotFoundReferences(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"contact_ids": [], "external_ids": ["u-99"], "emails": []}]
        }
    )

    contact_ids: list[uuid.UUID]
    external_ids: list[str]
    emails: list[str]


class MembersChanged(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "matched": 3,
                    "changed": 2,
                    "unchanged": 1,
                    "not_found": {"contact_ids": [], "external_ids": ["u-99"], "emails": []},
                    "member_count": 152,
                }
            ]
        }
    )

    matched: int = Field(description="Distinct contacts the references resolved to.")
    changed: int = Field(description="Contacts added (or removed) by this request.")
    unchanged: int = Field(description="Already members (add) or not members (remove).")
    not_found: NotFoundReferences = Field(description="References that matched no contact.")
    member_count: int


class ChangeOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b72",
                    "segment_id": _SEGMENT_ID,
                    "contact_id": _CONTACT_ID,
                    "change": "entered",
                    "occurred_at": _TIME,
                }
            ]
        },
    )

    id: uuid.UUID
    segment_id: uuid.UUID
    contact_id: uuid.UUID
    change: Literal["entered", "left"]
    occurred_at: datetime


class SnapshotOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{"taken_at": _TIME, "member_count": 1284}]},
    )

    taken_at: datetime
    member_count: int
