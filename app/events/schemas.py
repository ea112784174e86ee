"""Event request and response shapes. The limits here are documented in docs/events.md."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import to_json

from app.core.errors import FieldError
from app.core.schemas import Instant, RequestModel, ResponseModel

MAX_BATCH = 1000
# Serialised JSON size of `properties` per event.
MAX_PROPERTIES_BYTES = 16_384
# `revenue` lands in a NUMERIC(18, 4) column.
MAX_REVENUE = 10**14
TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$"
# Herald's own provider and tracking events (`email.opened`, ...) live here.
RESERVED_PREFIX = "email."

EventType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=TYPE_PATTERN),
]
# PostgreSQL text cannot hold NUL (pydantic already refuses unpaired surrogates).
_NO_NUL = r"^[^\x00]*$"
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_NO_NUL)]
# Email syntax is checked loosely here (one `@`, something either side); events must stay
# cheap to validate at 20,000/s. The address is normalised before matching.
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")
]
ClientEventId = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_NO_NUL)]
Source = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_NO_NUL)]


PropertyKey = Annotated[str, StringConstraints(strip_whitespace=False)]


class JsonObject(dict[str, Any]):
    """`properties` as validated, carrying its JSON text so ingestion serialises it once."""

    __slots__ = ("text",)

    def __init__(self, value: dict[str, Any], text: str) -> None:
        super().__init__(value)
        self.text = text


def storable_properties(value: dict[str, Any]) -> JsonObject:
    # pydantic-core's serialiser is ~15x faster than json.dumps; NaN / Infinity (which
    # Python's JSON parser lets through) are confirmed by the strict stdlib encoder.
    try:
        raw = to_json(value, inf_nan_mode="constants")
        if b"NaN" in raw or b"Infinity" in raw:
            json.dumps(value, allow_nan=False)
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            "must be plain JSON (no NaN or Infinity, valid Unicode, reasonable nesting)"
        ) from exc
    if b"\\u0000" in raw:
        raise ValueError("must not contain NUL characters (\\u0000)")
    if len(raw) > MAX_PROPERTIES_BYTES:
        raise ValueError(f"is {len(raw)} bytes of JSON; the limit is {MAX_PROPERTIES_BYTES}")
    if "revenue" in value:
        revenue = value["revenue"]
        if isinstance(revenue, bool) or not isinstance(revenue, int | float):
            raise ValueError("`revenue` must be a number")
        if not abs(revenue) < MAX_REVENUE:
            raise ValueError(f"`revenue` must be below {MAX_REVENUE:.0e} in magnitude")
    return JsonObject(value, raw.decode())


_TIME = "2026-11-22T09:30:00Z"
_EXAMPLE_EVENT: dict[str, Any] = {
    "external_id": "crm-4711",
    "type": "purchase",
    "properties": {"revenue": 49.9, "currency": "EUR", "sku": "PRO-1Y"},
    "occurred_at": _TIME,
    "source": "shop",
    "event_id": "order-98122",
}


class EventIn(RequestModel):
    """One event. Name the contact with exactly one of `contact_id`, `external_id`, `email`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                _EXAMPLE_EVENT,
                {"email": "ada@example.com", "type": "form.submitted", "source": "website"},
            ]
        }
    )

    contact_id: uuid.UUID | None = Field(None, description="A contact of this workspace.")
    external_id: ExternalId | None = Field(None, description="The contact's id in your system.")
    email: Email | None = Field(None, description="Matched case-insensitively.")
    type: EventType = Field(
        description=(
            "Free-form, 1-200 of `A-Z a-z 0-9 _ . : -`, starting with a letter or digit. "
            "`email.*` is reserved for Herald (needs an `admin` or `events:admin` key)."
        )
    )
    properties: dict[PropertyKey, Any] = Field(
        default_factory=dict,
        description=(
            "Any JSON object up to 16 KiB serialised. `revenue`, when present, must be a "
            "number (|revenue| < 10^14) and is also stored as the event's revenue."
        ),
    )
    occurred_at: Instant | None = Field(
        None,
        description="When it happened (RFC 3339 with offset). Default: now. At most 5 minutes "
        "in the future; any past time is accepted.",
    )
    source: Source | None = Field(None, description="Where it came from, e.g. `shop`.")
    event_id: ClientEventId | None = Field(
        None,
        description="Your id for this event. A resend with the same id (in this workspace) "
        "returns the original event and stores nothing.",
    )

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        return storable_properties(value)

    @model_validator(mode="after")
    def _exactly_one_contact_reference(self) -> EventIn:
        given = [
            name
            for name in ("contact_id", "external_id", "email")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "name the contact with exactly one of `contact_id`, `external_id`, `email`"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class EventBatchIn(RequestModel):
    """Items are validated one by one: a bad item is rejected in the answer, the rest land."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        _EXAMPLE_EVENT,
                        {"email": "ada@example.com", "type": "page.viewed", "event_id": "pv-1"},
                    ]
                }
            ]
        }
    )

    events: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="1-1,000 events, each shaped like `EventIn`.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/EventIn"}},
    )


class EventOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70",
                    "contact_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6f",
                    "type": "purchase",
                    "properties": {"revenue": 49.9, "currency": "EUR", "sku": "PRO-1Y"},
                    "revenue": 49.9,
                    "occurred_at": _TIME,
                    "received_at": _TIME,
                    "source": "shop",
                    "event_id": "order-98122",
                }
            ]
        },
    )

    id: uuid.UUID
    contact_id: uuid.UUID
    type: str
    properties: dict[str, Any]
    revenue: float | None
    occurred_at: datetime
    received_at: datetime
    source: str | None
    event_id: str | None = Field(validation_alias="client_event_id")


@dataclass(frozen=True, slots=True)
class EventFilters:
    contact_id: uuid.UUID | None = None
    type: str | None = None
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None


ItemStatus = Literal["accepted", "duplicate", "rejected"]


class EventBatchItem(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "index": 0,
                    "status": "accepted",
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70",
                    "contact_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6f",
                }
            ]
        }
    )

    index: int = Field(description="Position of the item in `events`.")
    status: ItemStatus = Field(
        description="`accepted` (stored now), `duplicate` (its `event_id` was seen before: "
        "`id` is the original event) or `rejected` (see `errors`; nothing stored)."
    )
    id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    errors: list[FieldError] | None = None


class EventBatchOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "accepted": 1,
                    "duplicates": 0,
                    "rejected": 1,
                    "results": [
                        {
                            "index": 0,
                            "status": "accepted",
                            "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70",
                            "contact_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6f",
                        },
                        {
                            "index": 1,
                            "status": "rejected",
                            "errors": [
                                {
                                    "pointer": "/events/1/type",
                                    "location": "body",
                                    "message": "`email.*` event types are reserved for Herald",
                                    "code": "reserved_type",
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
    rejected: int
    results: list[EventBatchItem] = Field(description="One entry per item, in request order.")
