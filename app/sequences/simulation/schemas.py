"""Bodies of the dry run (`POST /v1/sequences/{id}/simulate`): who, from when, which events
happen, and the timeline that comes back."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from app.contacts.schemas import Attributes, Email, Locale, Phone
from app.core.grammar import DurationRule, Timezone
from app.core.schemas import Instant, RequestModel, ResponseModel
from app.events.schemas import EventType, PropertyKey, storable_properties
from app.sequences.enrollments.schemas import EnrollmentState

MAX_EVENTS = 100
DEFAULT_HORIZON = timedelta(days=90)
MAX_HORIZON = timedelta(days=366)

Horizon = Annotated[timedelta, DurationRule(maximum=MAX_HORIZON, examples=("P90D",))]
# After `start_at`: zero is the start itself.
Offset = Annotated[
    timedelta, DurationRule(allow_zero=True, maximum=MAX_HORIZON, examples=("P1D", "PT0S"))
]

_START = "2026-11-23T10:00:00Z"
_CONTACT_ID = "0193a0c4-6a1e-7cc0-8000-00000000c001"
_PREVIEW: dict[str, Any] = {
    "channel": "email",
    "variant": None,
    "recipient": "ada@example.com",
    "subject": "Welcome",
    "text": "Hello Ada",
    "error": None,
}
_ENTRIES: list[Any] = [
    {
        "at": _START,
        "step_key": "welcome",
        "step_type": "send",
        "outcome": "sent",
        "detail": {"channel": "email", "status": "queued"},
        "message": _PREVIEW,
    },
    {
        "at": "2026-11-24T10:00:00Z",
        "step_key": None,
        "step_type": None,
        "outcome": "scripted_event",
        "detail": {"type": "email.replied", "properties": {}},
        "message": None,
    },
]
_FINAL: dict[str, Any] = {
    "state": "completed",
    "exit_reason": None,
    "step_key": "thanks",
    "next_action_at": None,
    "stopped": "finished",
}


class SimulatedContact(RequestModel):
    """A contact that exists only for the dry run (nothing about it is stored)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "timezone": "Asia/Tokyo",
                    "locale": "ja-JP",
                    "attributes": {"plan": "pro"},
                }
            ]
        }
    )

    email: Email | None = Field(
        None,
        description="Needed for email sends (else they are `skipped`, `no_address`). Must not "
        "be the email of an existing contact: simulate that one with `contact_id`.",
    )
    phone: Phone | None = Field(None, description="E.164; needed for sms sends.")
    timezone: Timezone | None = Field(None, description="IANA name, e.g. `Asia/Tokyo`.")
    locale: Locale | None = Field(None, description="BCP 47 tag, e.g. `ja-JP`.")
    attributes: Attributes = Field(default_factory=dict)


class ScriptedEvent(RequestModel):
    """An event the contact does during the dry run, at `at` or `after` the start."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"type": "email.replied", "after": "P1D"},
                {"type": "purchase", "at": "2026-11-25T12:00:00Z", "properties": {"revenue": 49}},
            ]
        }
    )

    type: EventType = Field(description="Any event type, `email.*` included.")
    at: Instant | None = Field(None, description="RFC 3339 instant, not before `start_at`.")
    after: Offset | None = None
    properties: dict[PropertyKey, Any] = Field(
        default_factory=dict, description="As for ingested events (16 KiB, numeric `revenue`)."
    )

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        return dict(storable_properties(value))

    @model_validator(mode="after")
    def _one_time(self) -> ScriptedEvent:
        if (self.at is None) == (self.after is None):
            raise ValueError("give exactly one of `at` and `after`")
        return self


class SimulationRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "contact": {"email": "ada@example.com", "timezone": "Europe/Paris"},
                    "start_at": _START,
                    "events": [{"type": "email.replied", "after": "P1D"}],
                },
                {"contact_id": _CONTACT_ID, "version": 2, "horizon": "P30D"},
                {"contact": {"email": "bob@example.com"}, "draft": True},
            ]
        }
    )

    contact_id: uuid.UUID | None = Field(
        None,
        description="An existing contact (left unchanged: `update_contact` steps apply "
        "to a throwaway copy of the transaction).",
    )
    contact: SimulatedContact | None = Field(None, description="A hypothetical contact.")
    version: int | None = Field(
        None, ge=1, le=2_147_483_647, description="Published version (default: the latest)"
    )
    draft: bool = Field(False, description="Simulate the current draft instead (it must validate).")
    start_at: Instant | None = Field(None, description="When the enrollment starts (default: now)")
    horizon: Horizon = DEFAULT_HORIZON
    events: list[ScriptedEvent] = Field(
        default_factory=list,
        max_length=MAX_EVENTS,
        description=f"At most {MAX_EVENTS}, each within the horizon.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SimulationRequest:
        if (self.contact_id is None) == (self.contact is None):
            raise ValueError("give exactly one of `contact_id` and `contact`")
        if self.draft and self.version is not None:
            raise ValueError("give `version` or `draft: true`, not both")
        return self


class MessagePreview(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_PREVIEW]})

    channel: str = Field(description="`email`, `sms` or `webhook`")
    variant: str | None
    recipient: str | None = Field(description="Address, number or URL")
    subject: str | None = Field(description="Email subject")
    text: str | None = Field(description="Text part (email, sms), first 500 characters")
    error: str | None = Field(description="Why rendering failed, if it did")


class SimulationEntry(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": _ENTRIES})

    at: datetime
    step_key: str | None
    step_type: str | None
    outcome: str = Field(
        description="The engine's outcomes (sent, failed, called, waiting, event, timeout, "
        "branched, updated, deferred, skipped, exited, completed) and `scripted_event` for "
        "an event of the script"
    )
    detail: dict[str, Any]
    message: MessagePreview | None = None


class SimulationFinal(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_FINAL]})

    state: EnrollmentState
    exit_reason: str | None
    step_key: str | None = Field(description="The step due next (or waited in, or last)")
    next_action_at: datetime | None
    stopped: Literal["finished", "horizon", "pass_limit"] = Field(
        description="`finished`: the enrollment ended; `horizon`: its next action is past the "
        "horizon; `pass_limit`: the dry run's bound on engine passes was reached"
    )


class SimulationOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sequence_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b90",
                    "version": 2,
                    "draft": False,
                    "contact_id": None,
                    "start_at": _START,
                    "horizon_end": "2027-02-21T10:00:00Z",
                    "timeline": _ENTRIES,
                    "final": _FINAL,
                }
            ]
        }
    )

    sequence_id: uuid.UUID
    version: int | None = Field(description="The published version run (null for the draft)")
    draft: bool
    contact_id: uuid.UUID | None = Field(description="The existing contact (null: hypothetical)")
    start_at: datetime
    horizon_end: datetime
    timeline: list[SimulationEntry] = Field(description="Oldest first")
    final: SimulationFinal
