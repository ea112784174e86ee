"""Enrollment API bodies and responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, EmailStr, Field, model_validator

from app.core.schemas import RequestModel, ResponseModel

EnrollmentState = Literal["active", "waiting", "paused", "completed", "exited", "failed"]

_ENROLLMENT_EXAMPLE: dict[str, Any] = {
    "id": "0193a0c4-6a1e-7cc0-8000-00000000e001",
    "sequence_id": "0193a0c4-6a1e-7cc0-8000-00000000a001",
    "sequence_version": 2,
    "contact_id": "0193a0c4-6a1e-7cc0-8000-00000000c001",
    "campaign_id": None,
    "source": "api",
    "state": "waiting",
    "step_key": "wait_reply",
    "next_action_at": "2026-11-25T09:00:00Z",
    "exit_reason": None,
    "started_at": "2026-11-22T09:00:00Z",
    "finished_at": None,
    "updated_at": "2026-11-22T09:00:01Z",
}


class EnrollmentCreate(RequestModel):
    """Who to enroll: a contact id, or an existing contact's external id or email."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"contact_id": "0193a0c4-6a1e-7cc0-8000-00000000c001"},
                {"email": "ada@example.com", "version": 2},
            ]
        }
    )

    contact_id: uuid.UUID | None = None
    external_id: str | None = Field(None, min_length=1, max_length=255)
    email: EmailStr | None = None
    version: int | None = Field(
        None, ge=1, le=2_147_483_647, description="Published version (default: the latest)"
    )

    @model_validator(mode="after")
    def _one_contact(self) -> EnrollmentCreate:
        given = [self.contact_id, self.external_id, self.email]
        if sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of `contact_id`, `external_id`, `email`")
        return self


class EnrollmentExit(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "sales_took_over"}]})

    reason: str = Field(
        "manual",
        min_length=1,
        max_length=48,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Recorded as `exit_reason` (prefixed `manual:` unless it is `manual`)",
    )


class EnrollmentOut(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ENROLLMENT_EXAMPLE]})

    id: uuid.UUID
    sequence_id: uuid.UUID
    sequence_version: int
    contact_id: uuid.UUID
    campaign_id: uuid.UUID | None
    source: str = Field(description="`api`, `campaign` or `trigger`")
    state: EnrollmentState
    step_key: str | None = Field(description="The step due next (or waited in)")
    next_action_at: datetime | None
    exit_reason: str | None
    started_at: datetime
    finished_at: datetime | None
    updated_at: datetime


class TimelineEntryOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c4-6a1e-7cc0-8000-00000000f001",
                    "step_key": "welcome",
                    "step_type": "send",
                    "visit": 1,
                    "outcome": "sent",
                    "detail": {"channel": "email", "status": "queued"},
                    "due_at": "2026-11-22T09:00:00Z",
                    "occurred_at": "2026-11-22T09:00:00.120Z",
                    "message_id": "0193a0c4-6a1e-7cc0-8000-00000000d001",
                }
            ]
        }
    )

    id: uuid.UUID
    step_key: str | None
    step_type: str | None
    visit: int
    outcome: str = Field(
        description="entered, sent (message handed to delivery), send_failed / send_unknown "
        "(its message settled so), failed, called, waiting, event, timeout, branched, "
        "updated, deferred, skipped, exited, completed"
    )
    detail: dict[str, Any]
    due_at: datetime | None = Field(description="When the step was scheduled")
    occurred_at: datetime
    message_id: uuid.UUID | None
