"""Contact request and response bodies, and the validation rules every entry point shares.

The API (create, patch, upsert) and the bulk import validate with these same models, so a
row that the import rejects is exactly a body the API would reject.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.core.grammar import Timezone
from app.core.normalize import E164, normalize_email, normalize_phone
from app.core.schemas import RequestModel, ResponseModel, check_text

# Attribute limits: keep rows small and segment rules simple.
MAX_ATTRIBUTE_KEYS = 100
MAX_ATTRIBUTE_DEPTH = 3  # a top-level value may be an object nesting objects 3 levels deep
MAX_ATTRIBUTE_STRING = 2048
MAX_ATTRIBUTE_LIST = 100
MAX_ATTRIBUTES_BYTES = 16_384
ATTRIBUTE_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
_ATTRIBUTE_KEY = re.compile(ATTRIBUTE_KEY_PATTERN)
LOCALE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"


def _email(value: str) -> str:
    return normalize_email(check_text(value))


def _phone(value: str) -> str:
    number = normalize_phone(check_text(value))
    if not E164.match(number):
        raise PydanticCustomError(
            "phone_format", "phone must be an E.164 number such as +14155550123"
        )
    return number


def _scalar_ok(value: Any) -> bool:
    if isinstance(value, str):
        check_text(value)
        return len(value) <= MAX_ATTRIBUTE_STRING
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, bool | int)


def _clean_value(value: Any, depth: int) -> Any:
    """Validate one attribute value; drop nulls nested inside objects (null means absent)."""
    if isinstance(value, dict):
        if depth >= MAX_ATTRIBUTE_DEPTH:
            raise PydanticCustomError(
                "attribute_depth", f"objects may nest at most {MAX_ATTRIBUTE_DEPTH} levels"
            )
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not _ATTRIBUTE_KEY.match(key):
                raise PydanticCustomError(
                    "attribute_key", f"nested key {key!r} must match {ATTRIBUTE_KEY_PATTERN}"
                )
            if item is not None:
                cleaned[key] = _clean_value(item, depth + 1)
        return cleaned
    if isinstance(value, list):
        if len(value) > MAX_ATTRIBUTE_LIST:
            raise PydanticCustomError(
                "attribute_list", f"lists hold at most {MAX_ATTRIBUTE_LIST} items"
            )
        if not all(item is not None and _scalar_ok(item) for item in value):
            raise PydanticCustomError(
                "attribute_list",
                "list items must be strings (up to 2048 characters), finite numbers or booleans",
            )
        return value
    if value is None or _scalar_ok(value):
        return value
    raise PydanticCustomError(
        "attribute_value",
        "values must be strings (up to 2048 characters), finite numbers, booleans, "
        "lists of those, or objects",
    )


def _attribute_value(value: Any) -> Any:
    return _clean_value(value, 0)


def _attributes_size(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":"))) > MAX_ATTRIBUTES_BYTES:
        raise PydanticCustomError(
            "attributes_size", f"attributes must serialise to at most {MAX_ATTRIBUTES_BYTES} bytes"
        )
    return value


Email = Annotated[EmailStr, StringConstraints(max_length=320), AfterValidator(_email)]
Phone = Annotated[str, StringConstraints(min_length=1, max_length=32), AfterValidator(_phone)]
Locale = Annotated[
    str, StringConstraints(pattern=LOCALE_PATTERN, max_length=35), AfterValidator(check_text)
]
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(check_text)
]
AttributeKey = Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY_PATTERN)]
AttributeValue = Annotated[Any, AfterValidator(_attribute_value)]
Attributes = Annotated[
    dict[AttributeKey, AttributeValue],
    Field(
        max_length=MAX_ATTRIBUTE_KEYS,
        description=(
            "Free-form data: keys match `^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$`; values are "
            "strings, numbers, booleans, lists of those, or objects nested up to 3 levels; "
            "at most 100 keys and 16 KiB. In writes, `null` removes a key."
        ),
    ),
    AfterValidator(_attributes_size),
]

_EXAMPLE_TIME = "2026-11-22T09:30:00Z"
_EXAMPLE_CONTACT: dict[str, Any] = {
    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70",
    "external_id": "crm-4211",
    "email": "ana.lima@example.com",
    "phone": "+351912345678",
    "timezone": "Europe/Lisbon",
    "locale": "pt-PT",
    "attributes": {"plan": "pro", "seats": 12, "tags": ["beta"]},
    "last_activity_at": None,
    "created_at": _EXAMPLE_TIME,
    "updated_at": _EXAMPLE_TIME,
}


class _Identified(RequestModel):
    @model_validator(mode="after")
    def _needs_identity(self) -> _Identified:
        if getattr(self, "external_id", None) is None and getattr(self, "email", None) is None:
            raise PydanticCustomError("identity_missing", "give `external_id`, `email`, or both")
        return self


class ContactCreate(_Identified):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "crm-4211",
                    "email": "Ana.Lima@example.com",
                    "phone": "+351 912 345 678",
                    "timezone": "Europe/Lisbon",
                    "locale": "pt-PT",
                    "attributes": {"plan": "pro", "seats": 12},
                }
            ]
        }
    )

    external_id: ExternalId | None = Field(None, description="Your id for this person.")
    email: Email | None = Field(None, description="Stored trimmed and lowercased.")
    phone: Phone | None = Field(None, description="E.164; spaces, dashes, dots, () dropped.")
    timezone: Timezone | None = Field(None, description="IANA name, e.g. `Europe/Lisbon`.")
    locale: Locale | None = Field(None, description="BCP 47 tag, e.g. `pt-PT`.")
    attributes: Attributes = Field(default_factory=dict)


class ContactUpsert(ContactCreate):
    """Same fields as create; see docs/contacts.md for the matching rules."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "crm-4211",
                    "email": "ana.lima@example.com",
                    "attributes": {"plan": "team", "trial": None},
                }
            ]
        }
    )


class ContactUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"timezone": "America/New_York", "attributes": {"plan": "team", "trial": None}}
            ]
        }
    )

    external_id: ExternalId | None = None
    email: Email | None = None
    phone: Phone | None = None
    timezone: Timezone | None = None
    locale: Locale | None = None
    attributes: Attributes | None = Field(
        None, description="Merged into the stored attributes; `null` removes a key."
    )


class ContactOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_EXAMPLE_CONTACT]}
    )

    id: uuid.UUID
    external_id: str | None
    email: str | None
    phone: str | None
    timezone: str | None
    locale: str | None
    attributes: dict[str, Any]
    last_activity_at: datetime | None
    created_at: datetime
    updated_at: datetime


UpsertOutcome = Literal["created", "updated", "unchanged"]


class ContactUpserted(ContactOut):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{**_EXAMPLE_CONTACT, "outcome": "updated"}]},
    )

    outcome: UpsertOutcome = Field(
        description="`created` (answered 201), `updated` or `unchanged` (answered 200)."
    )


def parse_attribute_filter(raw: str) -> tuple[str, Any]:
    """`key:value` -> (key, value). The value is read as JSON when it is a JSON scalar
    (`42`, `true`, `null`, `"42"`), otherwise taken as a plain string (`plan:pro`)."""
    key, sep, text = raw.partition(":")
    if not sep or not _ATTRIBUTE_KEY.match(key):
        raise ValueError("expected `key:value` with a key matching " + ATTRIBUTE_KEY_PATTERN)
    check_text(text)
    try:
        value: Any = json.loads(text)
    except ValueError:
        return key, text
    if isinstance(value, dict | list) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError("the value must be a string, number, boolean or null")
    if isinstance(value, str):
        check_text(value)  # a JSON escape (`"\\u0000"`) can spell what the raw text cannot
    return key, value
