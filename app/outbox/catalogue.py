"""The event catalogue: every webhook event type Herald emits, with its payload schema.

Each type is a pydantic model of the envelope's `data`; `TYPE` and `VERSION` name it. The
catalogue feeds three things from one place: the OpenAPI `webhooks` section, validation of
endpoint filters, and `emit()` (which takes these models). A breaking change to a payload
bumps `VERSION` (receivers read `version` from the envelope).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

_CAMPAIGN = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000001")
_CONTACT = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000002")
_ENROLLMENT = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000003")
_SEQUENCE = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000004")
_MESSAGE = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000005")
_SEGMENT = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000006")
_MEMBER = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000007")
_REQUEST = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000008")
_ENDPOINT = uuid.UUID("01936b2e-5b6a-7c3d-9e4f-000000000009")
EXAMPLE_TIME = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class EventData(BaseModel):
    """Base of every payload's `data`."""

    model_config = ConfigDict(extra="forbid")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    EXAMPLE: ClassVar[dict[str, Any]]


# -- campaigns ---------------------------------------------------------------------------


class CampaignStatusChanged(EventData):
    TYPE = "campaign.status_changed"
    SUMMARY = "A campaign changed status"
    DESCRIPTION = (
        "Every transition of the campaign state machine: submit, approval outcome, schedule, "
        "launch, pause, resume, completion, cancellation, archive, and an edit that returned "
        "the campaign to draft."
    )
    EXAMPLE = {
        "campaign_id": str(_CAMPAIGN),
        "name": "Spring launch",
        "from_status": "scheduled",
        "to_status": "running",
    }

    campaign_id: uuid.UUID
    name: str
    from_status: str
    to_status: str


class CampaignApprovalRequested(EventData):
    TYPE = "campaign.approval_requested"
    SUMMARY = "A campaign's approval was requested"
    DESCRIPTION = "A campaign was submitted for review: a new approval round opened."
    EXAMPLE = {
        "campaign_id": str(_CAMPAIGN),
        "approval_request_id": str(_REQUEST),
        "round": 1,
        "stages": 2,
    }

    campaign_id: uuid.UUID
    approval_request_id: uuid.UUID
    round: int
    stages: int = Field(description="Number of stages in this round (gates included).")


class CampaignApprovalDecided(EventData):
    TYPE = "campaign.approval_decided"
    SUMMARY = "A reviewer decided on a campaign"
    DESCRIPTION = (
        "One reviewer's decision, with the request's status after it (`approved` once the "
        "last stage passes, `rejected` / `changes_requested` end the round)."
    )
    EXAMPLE = {
        "campaign_id": str(_CAMPAIGN),
        "approval_request_id": str(_REQUEST),
        "member_id": str(_MEMBER),
        "decision": "approve",
        "comment": "Looks good.",
        "request_status": "pending",
    }

    campaign_id: uuid.UUID
    approval_request_id: uuid.UUID
    member_id: uuid.UUID
    decision: Literal["approve", "reject", "request_changes"]
    comment: str | None = None
    request_status: str


class CampaignLaunched(EventData):
    TYPE = "campaign.launched"
    SUMMARY = "A campaign launched"
    DESCRIPTION = (
        "A campaign started running: for `one_off` campaigns, after its audience was enrolled."
    )
    EXAMPLE = {
        "campaign_id": str(_CAMPAIGN),
        "enrolled": 48210,
        "planned_at": "2026-03-01T09:00:00Z",
        "launched_at": "2026-03-01T09:00:01Z",
    }

    campaign_id: uuid.UUID
    enrolled: int
    planned_at: datetime | None
    launched_at: datetime


class BudgetOverspent(EventData):
    TYPE = "budget.overspent"
    SUMMARY = "A campaign's spend passed its budget"
    DESCRIPTION = "Emitted once, by the spend entry that first takes spend over the budget."
    EXAMPLE = {
        "campaign_id": str(_CAMPAIGN),
        "budget": "5000.00",
        "spent": "5120.50",
        "currency": "EUR",
    }

    campaign_id: uuid.UUID
    budget: Decimal
    spent: Decimal
    currency: str


class ExperimentWinnerDeclared(EventData):
    TYPE = "experiment.winner_declared"
    SUMMARY = "An experiment's winner was declared"
    DESCRIPTION = "A send step's A/B experiment got a winner, manually or automatically."
    EXAMPLE = {
        "campaign_id": str(_CAMPAIGN),
        "sequence_id": str(_SEQUENCE),
        "step_key": "welcome",
        "variant": "b",
        "metric": "click",
        "declared_by": "automatic",
    }

    campaign_id: uuid.UUID | None
    sequence_id: uuid.UUID
    step_key: str
    variant: str
    metric: str
    declared_by: Literal["manual", "automatic"]


# -- enrollments --------------------------------------------------------------------------


class _Enrollment(EventData):
    enrollment_id: uuid.UUID
    contact_id: uuid.UUID
    sequence_id: uuid.UUID
    sequence_version: int
    campaign_id: uuid.UUID | None


_ENROLLMENT_EXAMPLE = {
    "enrollment_id": str(_ENROLLMENT),
    "contact_id": str(_CONTACT),
    "sequence_id": str(_SEQUENCE),
    "sequence_version": 3,
    "campaign_id": str(_CAMPAIGN),
}


class EnrollmentStarted(_Enrollment):
    TYPE = "enrollment.started"
    SUMMARY = "A contact entered a sequence"
    DESCRIPTION = "Enrolled by the API, a campaign launch or a trigger."
    EXAMPLE = _ENROLLMENT_EXAMPLE


class EnrollmentCompleted(_Enrollment):
    TYPE = "enrollment.completed"
    SUMMARY = "A contact finished a sequence"
    DESCRIPTION = "The enrollment ran past its last step."
    EXAMPLE = _ENROLLMENT_EXAMPLE


class EnrollmentExited(_Enrollment):
    TYPE = "enrollment.exited"
    SUMMARY = "A contact left a sequence early"
    DESCRIPTION = (
        "An exit step, an exit rule (replied, unsubscribed, converted, left a segment, custom "
        "event), the API, a campaign cancellation or a failed send with `on_send_failure: "
        "exit`. `reason` says which."
    )
    EXAMPLE = {**_ENROLLMENT_EXAMPLE, "reason": "replied"}

    reason: str


# -- messages -----------------------------------------------------------------------------


class _Message(EventData):
    message_id: uuid.UUID
    contact_id: uuid.UUID
    enrollment_id: uuid.UUID
    sequence_id: uuid.UUID
    campaign_id: uuid.UUID | None
    step_key: str
    channel: Literal["email", "sms", "webhook"]
    variant: str | None


_MESSAGE_EXAMPLE = {
    "message_id": str(_MESSAGE),
    "contact_id": str(_CONTACT),
    "enrollment_id": str(_ENROLLMENT),
    "sequence_id": str(_SEQUENCE),
    "campaign_id": str(_CAMPAIGN),
    "step_key": "welcome",
    "channel": "email",
    "variant": "a",
}


class MessageSent(_Message):
    TYPE = "message.sent"
    SUMMARY = "A message was handed to its provider"
    DESCRIPTION = "The provider accepted the message (SMTP 250, HTTP 2xx, webhook 2xx)."
    EXAMPLE = _MESSAGE_EXAMPLE


class MessageDelivered(_Message):
    TYPE = "message.delivered"
    SUMMARY = "A message was delivered"
    DESCRIPTION = "The provider reported delivery to the recipient (inbound provider event)."
    EXAMPLE = _MESSAGE_EXAMPLE


class MessageBounced(_Message):
    TYPE = "message.bounced"
    SUMMARY = "A message bounced"
    DESCRIPTION = (
        "The provider reported a bounce. `hard` bounces suppress the address and exit its "
        "enrollments; `soft` ones do not."
    )
    EXAMPLE = {**_MESSAGE_EXAMPLE, "bounce_type": "hard", "reason": "550 5.1.1 unknown user"}

    bounce_type: Literal["hard", "soft"]
    reason: str | None = None


class MessageOpened(_Message):
    TYPE = "message.opened"
    SUMMARY = "A message was opened"
    DESCRIPTION = "An open (tracking pixel or provider report). Every open is emitted."
    EXAMPLE = _MESSAGE_EXAMPLE


class MessageClicked(_Message):
    TYPE = "message.clicked"
    SUMMARY = "A link in a message was clicked"
    DESCRIPTION = "A tracked link was followed (or the provider reported a click)."
    EXAMPLE = {**_MESSAGE_EXAMPLE, "url": "https://example.com/pricing"}

    url: str | None = None


class MessageReplied(_Message):
    TYPE = "message.replied"
    SUMMARY = "A message got a reply"
    DESCRIPTION = "The provider reported a reply to the message."
    EXAMPLE = _MESSAGE_EXAMPLE


class MessageFailed(_Message):
    TYPE = "message.failed"
    SUMMARY = "A message could not be sent"
    DESCRIPTION = "A permanent provider error, or retries spent."
    EXAMPLE = {**_MESSAGE_EXAMPLE, "error": "550 mailbox unavailable"}

    error: str | None = None


class MessageUnknown(_Message):
    TYPE = "message.unknown"
    SUMMARY = "A message's fate is unknown"
    DESCRIPTION = (
        "A send was interrupted after it may have reached the provider (SMTP crash window): "
        "Herald never resends it, and says so."
    )
    EXAMPLE = _MESSAGE_EXAMPLE


# -- contacts and segments -----------------------------------------------------------------


class ContactUnsubscribed(EventData):
    TYPE = "contact.unsubscribed"
    SUMMARY = "A contact unsubscribed"
    DESCRIPTION = "Consent for a channel became `unsubscribed` (one-click link, API or import)."
    EXAMPLE = {"contact_id": str(_CONTACT), "channel": "email", "source": "one_click"}

    contact_id: uuid.UUID
    channel: str
    source: str | None = None


class ContactSuppressed(EventData):
    TYPE = "contact.suppressed"
    SUMMARY = "An address was suppressed"
    DESCRIPTION = (
        "An address joined the suppression list (unsubscribed, hard_bounce, complaint, "
        "manual, erased). `contact_id` is null when no contact holds the address."
    )
    EXAMPLE = {"contact_id": str(_CONTACT), "channel": "email", "reason": "hard_bounce"}

    contact_id: uuid.UUID | None
    channel: str
    reason: str


class ContactErased(EventData):
    TYPE = "contact.erased"
    SUMMARY = "A contact was erased"
    DESCRIPTION = "A privacy erasure removed the contact's personal data. Only the id remains."
    EXAMPLE = {"contact_id": str(_CONTACT)}

    contact_id: uuid.UUID


class SegmentEntered(EventData):
    TYPE = "segment.entered"
    SUMMARY = "A contact entered a segment"
    DESCRIPTION = "Membership of a dynamic or static segment began."
    EXAMPLE = {"segment_id": str(_SEGMENT), "contact_id": str(_CONTACT)}

    segment_id: uuid.UUID
    contact_id: uuid.UUID


class SegmentLeft(EventData):
    TYPE = "segment.left"
    SUMMARY = "A contact left a segment"
    DESCRIPTION = "Membership of a dynamic or static segment ended."
    EXAMPLE = {"segment_id": str(_SEGMENT), "contact_id": str(_CONTACT)}

    segment_id: uuid.UUID
    contact_id: uuid.UUID


# -- webhook endpoints ---------------------------------------------------------------------


class WebhookEndpointDisabled(EventData):
    TYPE = "webhook_endpoint.disabled"
    SUMMARY = "A webhook endpoint was disabled"
    DESCRIPTION = (
        "An endpoint stopped receiving events: it answered 410 Gone, or every attempt failed "
        "for the configured number of days. Re-enable it with PATCH `enabled: true`."
    )
    EXAMPLE = {
        "endpoint_id": str(_ENDPOINT),
        "url": "https://hooks.example.com/herald",
        "reason": "Every attempt failed since 2026-03-01T09:00:00Z (5 days).",
        "failing_since": "2026-03-01T09:00:00Z",
    }

    endpoint_id: uuid.UUID
    url: str
    reason: str
    failing_since: datetime | None


class WebhookEndpointTest(EventData):
    TYPE = "webhook_endpoint.test"
    SUMMARY = "A test event"
    DESCRIPTION = "Sent by `POST /v1/webhook-endpoints/{id}/test` to that endpoint only."
    EXAMPLE = {"endpoint_id": str(_ENDPOINT), "message": "Hello from Herald."}

    endpoint_id: uuid.UUID
    message: str


CATALOGUE: dict[str, type[EventData]] = {
    model.TYPE: model
    for model in (
        CampaignStatusChanged,
        CampaignApprovalRequested,
        CampaignApprovalDecided,
        CampaignLaunched,
        BudgetOverspent,
        ExperimentWinnerDeclared,
        EnrollmentStarted,
        EnrollmentCompleted,
        EnrollmentExited,
        MessageSent,
        MessageDelivered,
        MessageBounced,
        MessageOpened,
        MessageClicked,
        MessageReplied,
        MessageFailed,
        MessageUnknown,
        ContactUnsubscribed,
        ContactSuppressed,
        ContactErased,
        SegmentEntered,
        SegmentLeft,
        WebhookEndpointDisabled,
        WebhookEndpointTest,
    )
}
# Families a filter may name as `<family>.*`.
FAMILIES = sorted({name.split(".", 1)[0] for name in CATALOGUE})


def patterns_matching(event_type: str) -> list[str]:
    """The filter entries that select `event_type`: itself, its family wildcard, `*`.

    Endpoint filters are stored as these strings, so "does this endpoint want it?" is an
    array overlap (`event_types && :patterns`) in SQL.
    """
    family = event_type.split(".", 1)[0]
    return [event_type, f"{family}.*", "*"]


def envelope(data: EventData, timestamp: datetime) -> dict[str, Any]:
    """The versioned payload every endpoint receives."""
    return {
        "type": data.TYPE,
        "version": data.VERSION,
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "data": data.model_dump(mode="json"),
    }
