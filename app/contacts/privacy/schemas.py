from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ConfigDict, Field

from app.core.schemas import ResponseModel

_TIME = "2026-11-22T09:30:00Z"
_CONTACT = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6a"
_SEGMENT = "0190f3c8-8d2e-7b61-9a55-000000000009"
_HASH = "5d41402abc4b2a76b9719d911017c592a1b2c3d4e5f60718293a4b5c6d7e8f90"


class ContactRecord(ResponseModel):
    """The contact row as stored (export format; independent of the contacts API shape)."""

    id: uuid.UUID
    external_id: str | None
    email: str | None
    phone: str | None
    attributes: dict[str, Any]
    timezone: str | None
    locale: str | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime | None
    erased_at: datetime | None


class EventRecord(ResponseModel):
    id: uuid.UUID
    type: str
    properties: dict[str, Any]
    revenue: Decimal | None
    occurred_at: datetime
    received_at: datetime
    source: str | None
    client_event_id: str | None


class MembershipRecord(ResponseModel):
    segment_id: uuid.UUID
    segment_name: str
    entered_at: datetime


class MembershipChangeRecord(ResponseModel):
    id: uuid.UUID
    segment_id: uuid.UUID
    change: str
    occurred_at: datetime


class ContactExport(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "format": "herald.contact-export",
                    "format_version": 1,
                    "contact_id": _CONTACT,
                    "exported_at": _TIME,
                    "sections": {
                        "contact": {
                            "id": _CONTACT,
                            "external_id": "crm-42",
                            "email": "ana@example.com",
                            "phone": "+14155550123",
                            "attributes": {"plan": "pro"},
                            "timezone": "Europe/Paris",
                            "locale": "fr-FR",
                            "created_at": _TIME,
                            "updated_at": _TIME,
                            "last_activity_at": _TIME,
                            "erased_at": None,
                        },
                        "consent": {
                            "current": [
                                {
                                    "channel": "email",
                                    "status": "subscribed",
                                    "source": "signup_form",
                                    "ip": "203.0.113.7",
                                    "changed_at": _TIME,
                                }
                            ],
                            "history": [
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
                        },
                        "events": [
                            {
                                "id": "0190f3c8-8d2e-7b61-9a55-000000000003",
                                "type": "purchase",
                                "properties": {"sku": "A-1", "revenue": 42.5},
                                "revenue": "42.5000",
                                "occurred_at": _TIME,
                                "received_at": _TIME,
                                "source": "shop",
                                "client_event_id": "order-1001",
                            }
                        ],
                        "segments": {
                            "memberships": [
                                {
                                    "segment_id": _SEGMENT,
                                    "segment_name": "Pro plan",
                                    "entered_at": _TIME,
                                }
                            ],
                            "changes": [
                                {
                                    "id": "0190f3c8-8d2e-7b61-9a55-000000000004",
                                    "segment_id": _SEGMENT,
                                    "change": "entered",
                                    "occurred_at": _TIME,
                                }
                            ],
                        },
                        "suppressions": [],
                    },
                }
            ]
        }
    )

    format: str = Field(description="Always `herald.contact-export`.")
    format_version: int = Field(description="Bumped only on incompatible changes.")
    contact_id: uuid.UUID
    exported_at: datetime
    sections: dict[str, Any] = Field(
        description="One entry per data domain (`contact`, `consent`, `events`, `segments`, "
        "`suppressions`; later domains add theirs). Unknown sections should be kept as-is."
    )


class SuppressionKey(ResponseModel):
    channel: str
    address_hash: str


class ErasureOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "contact_id": _CONTACT,
                    "erased_at": _TIME,
                    "already_erased": False,
                    "suppressed": [{"channel": "email", "address_hash": _HASH}],
                    "removed": {
                        "events_scrubbed": 12,
                        "consent_ips_removed": 2,
                        "segment_memberships_removed": 3,
                    },
                }
            ]
        }
    )

    contact_id: uuid.UUID
    erased_at: datetime
    already_erased: bool = Field(
        description="True when the contact was erased before; the scrub ran again anyway."
    )
    suppressed: list[SuppressionKey] = Field(
        description="The `erased` suppression entries that keep the addresses unreachable."
    )
    removed: dict[str, int] = Field(description="What each erasure step removed, by step.")
