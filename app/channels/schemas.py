"""API shapes of messages, plus the one-click unsubscribe answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from app.core.schemas import ResponseModel

MessageStatus = Literal["queued", "sending", "sent", "delivered", "bounced", "failed", "unknown"]
MessageChannel = Literal["email", "sms", "webhook"]

_TIME = "2026-03-02T09:00:00Z"


@dataclass(frozen=True)
class MessageFilters:
    enrollment_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    status: str | None = None
    channel: str | None = None


class MessageOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b80",
                    "enrollment_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b81",
                    "contact_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6f",
                    "sequence_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b82",
                    "campaign_id": None,
                    "step_key": "welcome",
                    "visit": 1,
                    "channel": "email",
                    "provider": "smtp",
                    "template_version_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b83",
                    "variant": None,
                    "recipient": "ana@acme.example",
                    "content": {"subject": "Welcome, Ana", "html": "<p>Hi</p>", "text": "Hi"},
                    "status": "sent",
                    "attempts": 1,
                    "next_attempt_at": None,
                    "provider_message_id": "<0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b80@acme.example>",
                    "error": None,
                    "response": None,
                    "due_at": _TIME,
                    "created_at": _TIME,
                    "sent_at": "2026-03-02T09:00:01Z",
                    "delivered_at": None,
                    "failed_at": None,
                    "bounced_at": None,
                    "first_opened_at": "2026-03-02T10:12:40Z",
                    "first_clicked_at": None,
                    "replied_at": None,
                    "updated_at": "2026-03-02T10:12:40Z",
                }
            ]
        },
    )

    id: uuid.UUID
    enrollment_id: uuid.UUID
    contact_id: uuid.UUID
    sequence_id: uuid.UUID
    campaign_id: uuid.UUID | None
    step_key: str = Field(description="The send or webhook step that made the message.")
    visit: int = Field(description="Which visit of that step (steps in cycles repeat).")
    channel: MessageChannel
    provider: str | None = Field(description="`smtp`, `http`, `log` or `webhook`, once leased.")
    template_version_id: uuid.UUID | None
    variant: str | None = Field(description="A/B variant, when the step has variants.")
    recipient: str | None = Field(description="Email address, E.164 phone or webhook URL.")
    content: dict[str, Any] = Field(description="The rendered content (or webhook payload).")
    status: MessageStatus = Field(
        description=(
            "queued -> sending -> sent (-> delivered | bounced); `failed` after a permanent "
            "error or spent retries; `unknown` when an SMTP send was interrupted after the "
            "server may have accepted it (never resent)."
        )
    )
    attempts: int = Field(description="Send attempts made so far.")
    next_attempt_at: datetime | None = Field(
        description="Queued: when the next attempt is due. Sending: when the lease expires."
    )
    provider_message_id: str | None
    error: str | None = Field(description="The last failure's reason.")
    response: dict[str, Any] | None = Field(
        description="Webhook and HTTP provider calls: {status_code, latency_ms, excerpt}."
    )
    due_at: datetime
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    bounced_at: datetime | None
    first_opened_at: datetime | None
    first_clicked_at: datetime | None
    replied_at: datetime | None
    updated_at: datetime


class UnsubscribeOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"unsubscribed": True, "channel": "email"}]}
    )

    unsubscribed: bool = Field(description="Always true: the address no longer gets messages.")
    channel: MessageChannel
