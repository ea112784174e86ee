"""Schema bases: request bodies reject unknown fields; responses are plain models."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    GetJsonSchemaHandler,
    TypeAdapter,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

T = TypeVar("T")


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


@dataclass(frozen=True)
class DocumentedAs:
    """`Annotated[dict[str, Any], DocumentedAs(Goal)]`: the value is sent exactly as stored
    (a JSON column written from `Goal`'s JSON dump), and the OpenAPI document describes it with
    `Goal`'s schema, so clients get the type the request used. Nothing is re-validated or
    re-serialised at response time; the stored shape is the contract.
    """

    shape: Any

    def __get_pydantic_json_schema__(
        self, _: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        shape = TypeAdapter(self.shape).core_schema
        if "ref" in shape:
            # A model by reference (`$ref: Goal`), not a copy of its schema inline.
            shape = core_schema.definitions_schema(
                core_schema.definition_reference_schema(shape["ref"]), [shape]
            )
        return handler(shape)


class Page(ResponseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next page."""

    data: list[T]
    next_cursor: str | None = None


def check_text(value: str) -> str:
    """PostgreSQL text and JSONB cannot hold NUL or lone surrogates: refuse them as input."""
    if "\x00" in value:
        raise PydanticCustomError("invalid_character", "NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError("invalid_character", "invalid unicode characters") from exc
    return value


class _TooDeep(Exception):
    """Raised at the level past the limit; each level on the way out prepends its key."""

    def __init__(self) -> None:
        self.path: list[str] = []


def check_storable_json(value: Any, max_depth: int = 32) -> Any:
    """Every key and string storable in JSONB and bindable in SQL (`check_text`), no NaN or
    Infinity (JSONB has no such numbers), bounded nesting (`too_deep`, naming where)."""
    try:
        _check_json(value, max_depth, 0)
    except _TooDeep as exc:
        at = "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in exc.path)
        raise PydanticCustomError(
            "too_deep",
            "the value nests more than {max_depth} levels deep (at `{at}`)",
            {"max_depth": max_depth, "at": at},
        ) from None
    return value


def _check_json(value: Any, max_depth: int, depth: int) -> None:
    if depth > max_depth:
        raise _TooDeep
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON numbers")
    elif isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                check_text(key)
            try:
                _check_json(item, max_depth, depth + 1)
            except _TooDeep as exc:
                exc.path.insert(0, str(key))
                raise


def to_utc(value: datetime) -> datetime:
    """Instants compared in SQL must be representable in UTC (year 1-9999)."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the instant is out of range") from exc


# An RFC 3339 instant with an explicit offset, normalised to UTC.
Instant = Annotated[AwareDatetime, AfterValidator(to_utc)]
