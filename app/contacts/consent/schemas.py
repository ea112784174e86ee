from __future__ import annotations

import uuid
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    StringConstraints,
    field_validator,
)

from app.contacts.vocabulary import Channel, ConsentStatus, SuppressionReason
from app.core.schemas import Instant, RequestModel, ResponseModel, check_text

# `erased` entries are written only by erasure.
WritableReason = Literal["unsubscribed", "hard_bounce", "complaint", "manual"]
# PostgreSQL cannot store NUL or lone surrogates: refused up front (422, not 500).
Source = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_text)]
Address = Annotated[
    str, StringConstraints(min_length=1, max_length=320), AfterValidator(check_text)
]
Note = Annotated[str, StringConstraints(max_length=2000), AfterValidator(check_text)]

_TIME = "2026-11-22T09:30:00Z"
_CONTACT = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6a"
_HASH = "5d41402abc4b2a76b9719d911017c592a1b2c3d4e5f60718293a4b5c6d7e8f90"


class ConsentUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "subscribed",
                    "source": "signup_form",
                    "ip": "203.0.113.7",
                    "occurred_at": _TIME,
                },
                {"status": "unsubscribed", "source": "preference_center"},
            ]
        }
    )

    status: ConsentStatus
    source: Source = Field(
        description="Where the consent was given or withdrawn (form, import, support ticket...)."
    )
    ip: IPvAnyAddress | None = Field(
        default=None, description="IPv4 or IPv6 address the consent came from, if known."
    )
    occurred_at: Instant | None = Field(
        default=None,
        description="When it happened (RFC 3339, not in the future). Defaults to now.",
    )

    @field_validator("ip")
    @classmethod
    def _no_zone(cls, value: IPv4Address | IPv6Address | None) -> IPv4Address | IPv6Address | None:
        if isinstance(value, IPv6Address) and value.scope_id is not None:
            raise ValueError("an IPv6 zone (`%...`) is not part of a public address")
        return value


class ConsentOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel": "email",
                    "status": "subscribed",
                    "source": "signup_form",
                    "ip": "203.0.113.7",
                    "changed_at": _TIME,
                }
            ]
        }
    )

    channel: Channel
    status: ConsentStatus
    source: str | None = None
    ip: str | None = None
    changed_at: datetime | None = Field(
        default=None, description="Null when consent was never recorded (status `unknown`)."
    )


class ConsentChangeOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-000000000001",
                    "contact_id": _CONTACT,
                    "channel": "email",
                    "status": "unsubscribed",
                    "source": "preference_center",
                    "ip": None,
                    "changed_at": _TIME,
                }
            ]
        }
    )

    id: uuid.UUID
    contact_id: uuid.UUID
    channel: Channel
    status: ConsentStatus
    source: str | None
    ip: str | None
    changed_at: datetime


class ContactConsentOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "contact_id": _CONTACT,
                    "channels": [
                        {
                            "channel": "email",
                            "status": "subscribed",
                            "source": "signup_form",
                            "ip": "203.0.113.7",
                            "changed_at": _TIME,
                        },
                        {
                            "channel": "sms",
                            "status": "unknown",
                            "source": None,
                            "ip": None,
                            "changed_at": None,
                        },
                    ],
                    "recent_history": [
                        {
                            "id": "0190f3c8-8d2e-7b61-9a55-000000000001",
                            "contact_id": _CONTACT,
                            "channel": "email",
                            "status": "subscribed",
                            "source": "signup_form",
                            "ip": "203.0.113.7",
                            "changed_at": _TIME,
                        }
                    ],
                }
            ]
        }
    )

    contact_id: uuid.UUID
    channels: list[ConsentOut] = Field(description="Current consent, one entry per channel.")
    recent_history: list[ConsentChangeOut] = Field(
        description="The latest changes (up to 20), newest first; the full history is paginated "
        "at `/v1/contacts/{contact_id}/consent/history`."
    )


class SuppressionCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel": "email",
                    "address": "Ana@Example.com",
                    "reason": "hard_bounce",
                    "note": "Bounced 550 on 2026-11-21",
                }
            ]
        }
    )

    channel: Channel
    address: Address = Field(
        description="Email or E.164 phone; normalised and hashed on the way in, never stored."
    )
    reason: WritableReason = "manual"
    source: Source | None = Field(default=None, description="Who or what reported it.")
    note: Note | None = None


class SuppressionOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-000000000002",
                    "channel": "email",
                    "address_hash": _HASH,
                    "reason": "hard_bounce",
                    "source": "ses",
                    "note": "Bounced 550 on 2026-11-21",
                    "created_at": _TIME,
                }
            ]
        }
    )

    id: uuid.UUID
    channel: Channel
    address_hash: str = Field(description='SHA-256 hex of "<channel>:<normalised address>".')
    reason: SuppressionReason
    source: str | None
    note: str | None
    created_at: datetime


class SuppressionCheck(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"channel": "email", "addresses": ["ana@example.com", "bo@example.com"]}]
        }
    )

    channel: Channel
    addresses: list[Address] = Field(min_length=1, max_length=1000)


class SuppressionCheckItem(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "address": "ana@example.com",
                    "suppressed": True,
                    "reason": "hard_bounce",
                    "suppression_id": "0190f3c8-8d2e-7b61-9a55-000000000002",
                }
            ]
        }
    )

    address: str = Field(description="As sent.")
    suppressed: bool
    reason: SuppressionReason | None = None
    suppression_id: uuid.UUID | None = None


class SuppressionCheckOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel": "email",
                    "suppressed_count": 1,
                    "results": [
                        {
                            "address": "ana@example.com",
                            "suppressed": True,
                            "reason": "hard_bounce",
                            "suppression_id": "0190f3c8-8d2e-7b61-9a55-000000000002",
                        },
                        {
                            "address": "bo@example.com",
                            "suppressed": False,
                            "reason": None,
                            "suppression_id": None,
                        },
                    ],
                }
            ]
        }
    )

    channel: Channel
    suppressed_count: int
    results: list[SuppressionCheckItem] = Field(description="One per address, in request order.")
