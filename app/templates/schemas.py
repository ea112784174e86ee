from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, model_validator

from app.core.grammar import Timezone
from app.core.schemas import (
    DocumentedAs,
    RequestModel,
    ResponseModel,
    check_storable_json,
    check_text,
)

Channel = Literal["email", "sms", "webhook"]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_text)]
Body = Annotated[str, StringConstraints(max_length=200_000), AfterValidator(check_text)]
Line = Annotated[str, StringConstraints(max_length=998), AfterValidator(check_text)]
Short = Annotated[str, StringConstraints(max_length=320), AfterValidator(check_text)]
ContactText = Annotated[str, StringConstraints(max_length=320), AfterValidator(check_text)]

_TIME = "2026-11-22T09:30:00Z"
_TEMPLATE_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b80"
_CONTACT_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b71"
_CAMPAIGN_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b72"
_EMAIL: dict[str, Any] = {
    "subject": "Welcome, {{ contact.attributes.first_name | default('friend') }}",
    "html": "<p>Hi {{ attributes.first_name | default('there') }}</p>"
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    "text": "Hi {{ attributes.first_name | default('there') }}",
    "from_email": "news@acme.example",
    "from_name": "Acme",
}
_SMS: dict[str, Any] = {"text": "Your code ships today, {{ attributes.first_name }}."}
_WEBHOOK: dict[str, Any] = {
    "payload": {"email": "{{ contact.email }}", "plan": "{{ attributes.plan }}"}
}
CONTENT_DESCRIPTION = (
    "Per channel. `email`: `subject`, `html` and/or `text`, optional `from_email`, "
    "`from_name`, `reply_to`. `sms`: `text`. `webhook`: `payload`, a JSON object whose string "
    "values are templates. Every string is a jinja2 template (see docs/templates.md)."
)


ContentJson = Annotated[
    dict[str, Any],
    AfterValidator(check_storable_json),
    Field(
        description=CONTENT_DESCRIPTION, json_schema_extra={"examples": [_EMAIL, _SMS, _WEBHOOK]}
    ),
]


class EmailContent(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    subject: Line = Field(min_length=1)
    html: Body | None = None
    text: Body | None = None
    from_email: Short | None = None
    from_name: Short | None = None
    reply_to: Short | None = None

    @model_validator(mode="after")
    def _has_body(self) -> EmailContent:
        if self.html is None and self.text is None:
            raise ValueError("an email needs `html` or `text`")
        return self


class SmsContent(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class WebhookContent(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    payload: dict[str, Any]


# What a template's `content` is, by its channel (checked by CONTENT_MODELS on write).
Content = EmailContent | SmsContent | WebhookContent

CONTENT_MODELS: dict[str, type[RequestModel]] = {
    "email": EmailContent,
    "sms": SmsContent,
    "webhook": WebhookContent,
}


class TemplateCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Welcome email", "channel": "email", "content": _EMAIL},
                {"name": "Shipping SMS", "channel": "sms", "content": _SMS},
            ]
        }
    )

    name: Name
    channel: Channel
    content: ContentJson


class TemplateUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Welcome email (v2)"}, {"content": _SMS}]}
    )

    name: Name | None = None
    content: ContentJson | None = Field(None, description="Replaces the whole draft content.")


class TemplateOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _TEMPLATE_ID,
                    "name": "Welcome email",
                    "channel": "email",
                    "locked": False,
                    "content": _EMAIL,
                    "version": 2,
                    "etag": f'"{_TEMPLATE_ID}.2"',
                    "published_version": 1,
                    "created_at": _TIME,
                    "updated_at": _TIME,
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    channel: Channel
    locked: bool = Field(description="Locked templates refuse edits and deletion (409).")
    content: Annotated[dict[str, Any], DocumentedAs(Content)] = Field(
        description="The current draft."
    )
    version: int = Field(description="Bumped by every edit; the `ETag` is derived from it.")
    etag: str = Field(description="The current `ETag`, for `If-Match` on edits.")
    published_version: int | None = Field(description="The latest published version number.")
    created_at: datetime
    updated_at: datetime


class TemplateVersionOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "template_id": _TEMPLATE_ID,
                    "number": 1,
                    "channel": "email",
                    "content": _EMAIL,
                    "undefined_fields": ["contct.email"],
                    "published_at": _TIME,
                }
            ]
        },
    )

    template_id: uuid.UUID
    number: int = Field(description="1, 2, ... per template.")
    channel: Channel
    content: Annotated[dict[str, Any], DocumentedAs(Content)] = Field(
        description="The content as published; never changes."
    )
    undefined_fields: list[str] = Field(
        description="Merge fields that will render empty (warnings, see docs/templates.md)."
    )
    published_at: datetime


class PreviewContact(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ana@acme.example", "attributes": {"first_name": "Ana"}}]
        }
    )

    email: ContactText | None = None
    external_id: ContactText | None = None
    phone: ContactText | None = None
    timezone: Timezone | None = None
    locale: ContactText | None = None
    attributes: Annotated[dict[str, Any], AfterValidator(check_storable_json)] = Field(
        default_factory=dict
    )


class HypotheticalCampaign(RequestModel):
    """`campaign.*` for a preview without a real campaign (every field optional)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Spring sale", "objective": "Reactivation"}]}
    )

    name: ContactText | None = None
    description: ContactText | None = None
    objective: ContactText | None = None
    type: Literal["one_off", "triggered"] | None = None
    timezone: ContactText | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    tags: list[ContactText] = Field(default_factory=list, max_length=50)


class TemplatePreviewRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"contact_id": _CONTACT_ID},
                {"contact": {"email": "ana@acme.example", "attributes": {"first_name": "Ana"}}},
                {"contact_id": _CONTACT_ID, "version": 1, "campaign_id": _CAMPAIGN_ID},
                {"contact_id": _CONTACT_ID, "campaign": {"name": "Spring sale"}},
            ]
        }
    )

    contact_id: uuid.UUID | None = Field(None, description="An existing contact.")
    contact: PreviewContact | None = Field(None, description="Or a made-up contact.")
    version: int | None = Field(
        None, ge=1, le=2_147_483_647, description="A published version; the draft when omitted."
    )
    campaign_id: uuid.UUID | None = Field(
        None, description="An existing campaign filling `campaign.*` (at most one of the two)."
    )
    campaign: HypotheticalCampaign | None = Field(
        None, description="Or a made-up campaign; with neither, `campaign.*` renders empty."
    )

    @model_validator(mode="after")
    def _one_contact(self) -> TemplatePreviewRequest:
        if (self.contact_id is None) == (self.contact is None):
            raise ValueError("give exactly one of `contact_id` and `contact`")
        if self.campaign_id is not None and self.campaign is not None:
            raise ValueError("give at most one of `campaign_id` and `campaign`")
        return self


class TemplatePreviewOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "template_id": _TEMPLATE_ID,
                    "version": None,
                    "channel": "sms",
                    "content": {"text": "Your code ships today, Ana."},
                    "undefined_fields": [],
                }
            ]
        }
    )

    template_id: uuid.UUID
    version: int | None = Field(description="The version rendered; null for the draft.")
    channel: Channel
    content: Annotated[dict[str, Any], DocumentedAs(Content)] = Field(
        description="The rendered content."
    )
    undefined_fields: list[str] = Field(description="Merge fields that rendered empty.")
