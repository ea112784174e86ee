"""Rule nodes (frozen pydantic models), limits, and the value parsers they share."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from app.core import grammar
from app.core.errors import FieldError

MAX_DEPTH = 8  # nesting levels of all/any/not
MAX_CONDITIONS = 100  # leaf conditions in one rule (segment references count as one)
MAX_CHILDREN = 50  # items in one all/any
MAX_VALUES = 100  # items in an in/not_in list
MAX_STRING = 500  # characters in one compared string
MAX_COUNT = 1_000_000  # largest event count bound
MAX_DURATION = grammar.MAX_DURATION
MAX_PATH_DEPTH = 8

Scalar: TypeAlias = str | int | float | bool
AttributeValue: TypeAlias = Scalar | list[Scalar] | None

STRING_FIELDS = ("email", "email_domain", "external_id", "timezone", "locale")
DATE_FIELDS = ("created_at", "last_activity_at")
STANDARD_FIELDS = STRING_FIELDS + DATE_FIELDS

STRING_OPS = ("eq", "neq", "in", "not_in", "contains", "starts_with", "exists", "not_exists")
DATE_OPS = ("before", "after", "between", "within_last", "within_next", "exists", "not_exists")
JSON_OPS = (
    *("eq", "neq", "in", "not_in", "contains", "starts_with"),
    *("gt", "gte", "lt", "lte", "between", "exists", "not_exists"),
)
AttributeOp = Literal[
    "eq",
    "neq",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "exists",
    "not_exists",
    "before",
    "after",
    "within_last",
    "within_next",
]

SEGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
COUNT_KEYS = {
    "gte": "min",
    "at_least": "min",
    "gt": "min_excl",
    "lte": "max",
    "at_most": "max",
    "lt": "max_excl",
    "eq": "exact",
    "exactly": "exact",
}


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AttributeCondition(_Node):
    field: str = Field(description="A standard field or `attributes.<path>`")
    op: AttributeOp
    value: AttributeValue = None

    @property
    def path(self) -> tuple[str, ...]:
        """The JSON path inside `attributes` (empty for standard fields)."""
        return tuple(self.field.split(".")[1:]) if self.field.startswith("attributes.") else ()


class PropertyFilter(_Node):
    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.property.split("."))

    property: str = Field(description="Path inside the event's `properties`, e.g. `url`")
    op: AttributeOp
    value: AttributeValue = None


class EventCount(_Node):
    """Inclusive bounds on how many matching events a contact has (normalised form)."""

    min: int = 1
    max: int | None = None


class EventCondition(_Node):
    type: str
    where: list[PropertyFilter] = Field(default_factory=list)
    count: EventCount = Field(default_factory=EventCount)
    within: str | None = Field(default=None, description="ISO 8601 duration; null means ever")


class ConsentCondition(_Node):
    channel: str
    status: str


class SegmentCondition(_Node):
    id: uuid.UUID


class AllNode(_Node):
    all: list[Rule]


class AnyNode(_Node):
    any: list[Rule]


class NotNode(_Node):
    not_: Rule = Field(alias="not")


class AttributeNode(_Node):
    attribute: AttributeCondition


class EventNode(_Node):
    event: EventCondition


class ConsentNode(_Node):
    consent: ConsentCondition


class SegmentNode(_Node):
    segment: SegmentCondition


Rule: TypeAlias = (
    AllNode | AnyNode | NotNode | AttributeNode | EventNode | ConsentNode | SegmentNode
)

for _model in (AllNode, AnyNode, NotNode):
    _model.model_rebuild()


class RuleError(Exception):
    """An invalid rule; `errors` lists every problem with a JSON pointer into the rule."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.pointer or '/'}: {e.message}" for e in errors))
        self.errors = errors


def rule_error(pointer: str, message: str, code: str) -> RuleError:
    return RuleError([FieldError(pointer=pointer, location="body", message=message, code=code)])


def parse_duration(text: str) -> timedelta | None:
    """A positive duration of the API's one grammar (`app.core.grammar`: weeks, days, hours,
    minutes, seconds; no months or years), at most `MAX_DURATION`."""
    delta = grammar.parse_duration(text)
    return delta if delta is not None and timedelta(0) < delta <= MAX_DURATION else None


def duration_message(value: object, suffix: str = "") -> str:
    """Why a rule's duration is refused: the month/year refusal word for word as every other
    duration field of the API gives it, else what is expected."""
    if isinstance(value, str) and grammar.duration_problem(value) == grammar.CALENDAR_HELP:
        return grammar.CALENDAR_HELP
    return (
        f"Expected {grammar.DURATION_HELP}, more than zero and at most "
        f"`{grammar.format_duration(MAX_DURATION)}`{suffix}."
    )


def parse_instant(text: str) -> datetime | None:
    """An RFC 3339 timestamp with an offset (`2026-01-31T00:00:00Z`)."""
    if not re.match(
        r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})$", text
    ):
        return None
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        # Compared in UTC (PostgreSQL and Python alike): `9999-12-31T23:59:59-14:00` or
        # `0001-01-01T00:00:00+14:00` fall outside years 1-9999 there, so they are refused
        # here rather than failing the query ("date value out of range").
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else None
