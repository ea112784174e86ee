"""Request and response bodies of the sequences API (definitions, versions, validation)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from app.core.errors import FieldError
from app.core.schemas import (
    DocumentedAs,
    RequestModel,
    ResponseModel,
    check_storable_json,
    check_text,
)
from app.sequences.definition import SequenceDefinition, dump

Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_text)]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(check_text)]

_TIME = "2026-11-22T09:30:00Z"
_SEQUENCE_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b90"
_VERSION_ID = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b91"
_WELCOME_TEMPLATE = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b80"
_FOLLOW_UP_TEMPLATE = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b81"
_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2nJoa3Gj5sA="

# The realistic example: welcome, then wait up to three days for a reply, else follow up.
EXAMPLE_DEFINITION: dict[str, Any] = {
    "steps": [
        {"key": "welcome", "type": "send", "channel": "email", "template_id": _WELCOME_TEMPLATE},
        {
            "key": "await_reply",
            "type": "wait_for_event",
            "event_type": "email.replied",
            "timeout": "P3D",
            "on_event": "done",
            "on_timeout": "follow_up",
        },
        {
            "key": "follow_up",
            "type": "send",
            "channel": "email",
            "template_id": _FOLLOW_UP_TEMPLATE,
        },
        {"key": "done", "type": "exit", "reason": "finished"},
    ],
    "settings": {
        "exit_rules": [{"on": "replied"}, {"on": "unsubscribed"}],
        "send_window": {
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "start": "09:00:00",
            "end": "17:00:00",
        },
        "default_timezone": "Europe/Paris",
    },
}


def _pinned(definition: dict[str, Any]) -> dict[str, Any]:
    """The example as a published version stores it: normalised, templates pinned."""
    steps = [dict(step) for step in definition["steps"]]
    steps[0].update(next="await_reply", template_version_id="0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b82")
    steps[2].update(next="done", template_version_id="0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b83")
    return {**definition, "steps": steps, "entry": "welcome"}


EXAMPLE_PUBLISHED = _pinned(EXAMPLE_DEFINITION)


def _storable(definition: SequenceDefinition) -> SequenceDefinition:
    """Free-form parts (filters, conditions, attributes) must be storable in JSONB."""
    check_storable_json(dump(definition))
    return definition


Definition = Annotated[
    SequenceDefinition,
    AfterValidator(_storable),
    Field(description="The step graph and settings (see docs/sequences.md)."),
]


class SequenceCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Onboarding",
                    "description": "Welcome, then follow up if there is no reply in 3 days.",
                    "definition": EXAMPLE_DEFINITION,
                }
            ]
        }
    )

    name: Name
    description: Description | None = None
    definition: Definition


class SequenceUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Onboarding (v2)"},
                {"description": None},
                {"definition": EXAMPLE_DEFINITION},
            ]
        }
    )

    name: Name | None = None
    description: Description | None = Field(None, description="`null` clears it.")
    definition: Definition | None = Field(None, description="Replaces the whole draft.")


class SequenceOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _SEQUENCE_ID,
                    "name": "Onboarding",
                    "description": "Welcome, then follow up if there is no reply in 3 days.",
                    "definition": EXAMPLE_DEFINITION,
                    "version": 3,
                    "etag": f'"{_SEQUENCE_ID}.3"',
                    "published_version": 1,
                    "created_at": _TIME,
                    "updated_at": _TIME,
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    description: str | None
    definition: Annotated[dict[str, Any], DocumentedAs(SequenceDefinition)] = Field(
        description="The current draft, as saved."
    )
    version: int = Field(description="Bumped by every edit; the `ETag` is derived from it.")
    etag: str = Field(description="The current `ETag`, for `If-Match` on edits.")
    published_version: int | None = Field(description="The latest published version number.")
    created_at: datetime
    updated_at: datetime


class SequenceCreatedOut(SequenceOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _SEQUENCE_ID,
                    "name": "Onboarding",
                    "description": None,
                    "definition": EXAMPLE_DEFINITION,
                    "version": 1,
                    "etag": f'"{_SEQUENCE_ID}.1"',
                    "published_version": None,
                    "created_at": _TIME,
                    "updated_at": _TIME,
                    "signing_secret": _SECRET,
                }
            ]
        }
    )

    signing_secret: str = Field(
        description=(
            "Standard Webhooks secret signing this sequence's `webhook` steps. Shown only "
            "here and when rotated: store it now."
        )
    )


class SigningSecretOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"sequence_id": _SEQUENCE_ID, "signing_secret": _SECRET}]}
    )

    sequence_id: uuid.UUID
    signing_secret: str = Field(description="The new secret; the old one stops signing now.")


class SequenceVersionOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": _VERSION_ID,
                    "sequence_id": _SEQUENCE_ID,
                    "number": 1,
                    "definition": EXAMPLE_PUBLISHED,
                    "published_at": _TIME,
                }
            ]
        },
    )

    id: uuid.UUID
    sequence_id: uuid.UUID
    number: int = Field(description="1, 2, ... per sequence.")
    # Not DocumentedAs(SequenceDefinition): publishing adds `template_version_id` to steps.
    definition: dict[str, Any] = Field(
        description=(
            "As published; never changes. Normalised (every linear step names its `next`, "
            "`entry` is explicit) and each `template_id` is pinned by a `template_version_id`."
        )
    )
    published_at: datetime


class ValidationOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"valid": True, "errors": []},
                {
                    "valid": False,
                    "errors": [
                        {
                            "pointer": "/definition/steps/1/on_timeout",
                            "location": "body",
                            "message": "No step has the key `follow_upp`.",
                            "code": "unknown_step",
                        }
                    ],
                },
            ]
        }
    )

    valid: bool = Field(description="True when the draft can be published.")
    errors: list[FieldError] = Field(
        description="Every problem, each with a JSON pointer into the sequence body."
    )
