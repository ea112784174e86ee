"""Inbound provider event shapes (docs/inbound.md). Items are validated one by one, so the
request body is parsed by the service, not by FastAPI; these models document it and check
each item."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.core.errors import FieldError
from app.core.schemas import Instant, RequestModel, ResponseModel, check_text

MAX_BATCH = 1000
EventKind = Literal["delivered", "bounced", "complained", "opened", "clicked", "replied"]
BounceType = Literal["hard", "soft"]
ResultStatus = Literal["accepted", "duplicate", "unknown_message", "invalid"]

ProviderEventId = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_text)
]
ProviderMessageId = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(check_text)
]
Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=1000), AfterValidator(check_text)
]
Url = Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(check_text)]

_MESSAGE = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70"
_TIME = "2026-11-22T09:30:00Z"
_EXAMPLE_BOUNCE: dict[str, Any] = {
    "type": "bounced",
    "message_id": _MESSAGE,
    "bounce_type": "hard",
    "reason": "550 5.1.1 The email account that you tried to reach does not exist",
    "occurred_at": _TIME,
    "event_id": "evt_8f3a2c",
}
_EXAMPLE_CLICK: dict[str, Any] = {
    "type": "clicked",
    "provider_message_id": "pm-4b1e9a7c",
    "url": "https://example.com/pricing",
    "event_id": "evt_8f3a2d",
}


def herald_message_id(value: str) -> uuid.UUID:
    """Herald's message id as a provider may echo it: the bare UUID, or the `Message-ID`
    header Herald's SMTP provider sends (`<uuid@domain>`, whose local part is the id)."""
    text = value.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local = text.split("@", 1)[0] if "@" in text else text
    try:
        return uuid.UUID(local)
    except ValueError as exc:
        raise ValueError(
            "must be Herald's message id: a UUID, or `<uuid@domain>` as in the Message-ID"
        ) from exc


MessageIdText = Annotated[str, StringConstraints(min_length=1, max_length=320)]


class InboundEvent(RequestModel):
    """One provider event about one message. Name the message with exactly one of
    `message_id` (Herald's id) or `provider_message_id` (the id the provider gave Herald)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                _EXAMPLE_BOUNCE,
                _EXAMPLE_CLICK,
                {"type": "delivered", "message_id": f"<{_MESSAGE}@acme.example>"},
            ]
        }
    )

    type: EventKind = Field(description="What happened to the message.")
    message_id: MessageIdText | None = Field(
        None,
        description="Herald's message id: the UUID Herald sent as `Idempotency-Key` / JSON "
        "`id` (HTTP provider) or as the `Message-ID` local part (SMTP); `<uuid@domain>` is "
        "accepted as is.",
    )
    provider_message_id: ProviderMessageId | None = Field(
        None,
        description="The id the provider returned when Herald handed it the message (the "
        "message's `provider_message_id`).",
    )
    occurred_at: Instant | None = Field(
        None,
        description="When it happened (RFC 3339 with offset). Default: now. At most 5 "
        "minutes ahead of Herald's clock.",
    )
    event_id: ProviderEventId | None = Field(
        None,
        description="The provider's id for this event: the dedup key (a resend changes "
        "nothing). With the `standard_webhooks` scheme it defaults to the `webhook-id` "
        "header (`<webhook-id>/<index>` for items of a batch).",
    )
    bounce_type: BounceType | None = Field(
        None,
        description="`bounced` only. `hard` (default: permanent, the address is suppressed "
        "and its enrollments exit) or `soft` (temporary: recorded, nothing else).",
    )
    reason: Reason | None = Field(
        None, description="The provider's diagnostic (bounce or complaint), up to 1,000 chars."
    )
    url: Url | None = Field(None, description="`clicked` only: the link that was followed.")

    @field_validator("message_id")
    @classmethod
    def _message_id(cls, value: str | None) -> str | None:
        if value is not None:
            herald_message_id(value)
        return value

    @model_validator(mode="after")
    def _rules(self) -> InboundEvent:
        if (self.message_id is None) == (self.provider_message_id is None):
            raise ValueError(
                "name the message with exactly one of `message_id`, `provider_message_id`"
            )
        if self.bounce_type is not None and self.type != "bounced":
            raise ValueError("`bounce_type` only applies to `bounced` events")
        if self.url is not None and self.type != "clicked":
            raise ValueError("`url` only applies to `clicked` events")
        return self

    @property
    def herald_id(self) -> uuid.UUID | None:
        return herald_message_id(self.message_id) if self.message_id is not None else None


class InboundBatch(RequestModel):
    """Up to 1,000 events; each is checked on its own (a bad one never fails the others)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"events": [_EXAMPLE_BOUNCE, _EXAMPLE_CLICK]}]}
    )

    events: list[InboundEvent] = Field(min_length=1, max_length=MAX_BATCH)


def request_body_schema() -> dict[str, Any]:
    """The documented body: one event, or `{"events": [...]}` (inlined: the route reads the
    raw body itself, because the signature covers its exact bytes)."""
    event = InboundEvent.model_json_schema()
    batch = InboundBatch.model_json_schema()
    batch.pop("$defs", None)
    batch["properties"]["events"]["items"] = event
    return {
        "oneOf": [event, batch],
        "examples": [_EXAMPLE_BOUNCE, {"events": [_EXAMPLE_BOUNCE, _EXAMPLE_CLICK]}],
    }


class InboundResult(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"index": 0, "status": "accepted"}]})

    index: int = Field(description="Position of the item (0 for a single-event body).")
    status: ResultStatus = Field(
        description="`accepted` (applied now), `duplicate` (its `event_id` was seen before: "
        "nothing changed), `unknown_message` (no such message, or not an email) or `invalid` "
        "(see `errors`)."
    )
    errors: list[FieldError] | None = None


class InboundAnswer(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "accepted": 1,
                    "duplicates": 0,
                    "unknown": 0,
                    "invalid": 1,
                    "results": [
                        {"index": 0, "status": "accepted"},
                        {
                            "index": 1,
                            "status": "invalid",
                            "errors": [
                                {
                                    "pointer": "/events/1/type",
                                    "location": "body",
                                    "message": "Input should be 'delivered', 'bounced', ...",
                                    "code": "literal_error",
                                }
                            ],
                        },
                    ],
                }
            ]
        }
    )

    accepted: int
    duplicates: int
    unknown: int
    invalid: int
    results: list[InboundResult] = Field(description="One entry per item, in request order.")
