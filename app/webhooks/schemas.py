"""Request and response shapes of the webhooks API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from app.core.schemas import DocumentedAs, Instant, RequestModel, ResponseModel, check_text
from app.outbox.catalogue import CATALOGUE, FAMILIES

_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5c01"
_EVENT = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5c02"
_DELIVERY = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5c03"
_ATTEMPT = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5c04"
_TIME = "2026-11-22T09:30:00Z"
_URL = "https://hooks.example.com/herald"
MAX_FILTERS = 50


def check_filter(value: str) -> str:
    """An exact catalogue type, `<family>.*` or `*`."""
    if value == "*" or value in CATALOGUE:
        return value
    if value.endswith(".*") and value[:-2] in FAMILIES:
        return value
    raise ValueError(
        f"unknown event type `{value[:100]}`: use a type of GET /v1/webhook-event-types, "
        f"a family wildcard ({', '.join(f + '.*' for f in FAMILIES)}) or `*`"
    )


EventFilter = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(check_filter)
]
Url = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048, strip_whitespace=True),
    AfterValidator(check_text),
]
Description = Annotated[str, StringConstraints(max_length=1000), AfterValidator(check_text)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(check_text)]
RateLimit = Annotated[int, Field(ge=1, le=10_000)]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


class EndpointCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": _URL,
                    "description": "CRM sync",
                    "event_types": ["campaign.*", "message.bounced"],
                    "rate_limit_per_second": 50,
                }
            ]
        }
    )

    url: Url = Field(
        description="An http(s) URL on a public address (checked now and at every send)."
    )
    description: Description | None = None
    event_types: list[EventFilter] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=MAX_FILTERS,
        description="Exact types, family wildcards (`campaign.*`) or `*` (the default).",
    )
    enabled: bool = True
    rate_limit_per_second: RateLimit | None = Field(
        None, description="At most this many attempts per second to this endpoint."
    )


class EndpointUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"event_types": ["message.*"]},
                {"enabled": False, "disabled_reason": "Receiver maintenance"},
                {"enabled": True},
            ]
        }
    )

    url: Url | None = None
    description: Description | None = None
    event_types: list[EventFilter] | None = Field(None, min_length=1, max_length=MAX_FILTERS)
    enabled: bool | None = Field(
        None,
        description="`false` stops deliveries (pending ones wait); `true` resumes them and "
        "clears the failure streak.",
    )
    disabled_reason: Reason | None = Field(None, description="Recorded when disabling.")
    rate_limit_per_second: RateLimit | None = None


_ENDPOINT_EXAMPLE: dict[str, Any] = {
    "id": _ID,
    "url": _URL,
    "description": "CRM sync",
    "event_types": ["campaign.*", "message.bounced"],
    "enabled": True,
    "disabled_reason": None,
    "disabled_at": None,
    "rate_limit_per_second": 50,
    "failing_since": None,
    "last_success_at": _TIME,
    "previous_secret_expires_at": None,
    "version": 1,
    "etag": f'"{_ID}.1"',
}


class EndpointOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_ENDPOINT_EXAMPLE]}
    )

    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    rate_limit_per_second: int | None
    failing_since: datetime | None = Field(
        description="Start of the current run of failed attempts (null after a success)."
    )
    last_success_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries carry a signature with the previous secret too."
    )
    version: int
    etag: str


class EndpointWithSecret(EndpointOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**_ENDPOINT_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]
        }
    )

    secret: str = Field(description="`whsec_...`: shown only now. Verify signatures with it.")


class RotateSecret(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_seconds": 86400}]})

    overlap_seconds: int = Field(
        86_400,
        ge=0,
        le=7 * 86_400,
        description="How long the previous secret keeps signing too (both signatures sent).",
    )


_DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": _DELIVERY,
    "endpoint_id": _ID,
    "event_id": _EVENT,
    "event_type": "campaign.launched",
    "status": "pending",
    "attempts": 2,
    "next_attempt_at": "2026-11-22T09:35:05Z",
    "last_status_code": 503,
    "last_error": "HTTP 503",
    "created_at": _TIME,
    "updated_at": _TIME,
    "completed_at": None,
}


class DeliveryOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [_DELIVERY_EXAMPLE]},
    )

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: Annotated[str, DocumentedAs(DeliveryStatus)]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class DeliveryDetail(DeliveryOut):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    **_DELIVERY_EXAMPLE,
                    "payload": {
                        "type": "campaign.launched",
                        "version": 1,
                        "timestamp": "2026-11-22T09:30:00Z",
                        "data": {
                            "campaign_id": "0193a5f2-6c1d-7b3e-9f00-0000000000c1",
                            "enrolled": 48210,
                            "planned_at": "2026-11-22T09:30:00Z",
                            "launched_at": "2026-11-22T09:30:01Z",
                        },
                    },
                }
            ]
        },
    )

    payload: dict[str, Any] = Field(description="The envelope exactly as delivered.")


class AttemptOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": _ATTEMPT,
                    "delivery_id": _DELIVERY,
                    "endpoint_id": _ID,
                    "attempt": 1,
                    "attempted_at": _TIME,
                    "outcome": "http_error",
                    "status_code": 503,
                    "latency_ms": 412,
                    "response_excerpt": "upstream unavailable",
                    "error": None,
                }
            ]
        },
    )

    id: uuid.UUID
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempt: int
    attempted_at: datetime
    outcome: str = Field(
        description="success, http_error (3xx included), rate_limited (429), timeout, "
        "connection_error, refused (the SSRF guard stopped it before connecting)"
    )
    status_code: int | None
    latency_ms: int | None
    response_excerpt: str | None = Field(description="The first 1 KiB of the response body.")
    error: str | None


class ReplayFailed(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"since": _TIME}]})

    since: Instant = Field(description="Failed deliveries completed at or after this time.")


class ReplayResult(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"queued": 42}]})

    queued: int


class TestSend(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"message": "Hello from Herald."}]})

    message: Annotated[
        str, StringConstraints(min_length=1, max_length=500), AfterValidator(check_text)
    ] = "Hello from Herald."


_EVENT_TYPE_EXAMPLE: dict[str, Any] = {
    "type": "campaign.launched",
    "version": 1,
    "summary": "A campaign launched",
    "description": "A campaign started running.",
    "example": {
        "type": "campaign.launched",
        "version": 1,
        "timestamp": _TIME,
        "data": {"campaign_id": _ID, "enrolled": 10},
    },
}


class EventTypeOut(ResponseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EVENT_TYPE_EXAMPLE]})

    type: str
    version: int
    summary: str
    description: str
    example: dict[str, Any] = Field(description="An example envelope.")


class EventTypeList(ResponseModel):
    """A page like every list; the catalogue is small, so it is always one page."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"data": [_EVENT_TYPE_EXAMPLE], "next_cursor": None}]}
    )

    data: list[EventTypeOut]
    next_cursor: str | None = Field(
        None, description="Always null: the whole catalogue is one page."
    )
