"""The one input grammar for durations, time zones and query timestamps.

Every field that takes a duration, a time zone or (in a query string) an instant uses the
types here, so a value means the same thing on every endpoint and in every rule language:

- Durations: ISO 8601 with weeks, days, hours, minutes and seconds (`P2W`, `P3D`, `PT12H`,
  `P1DT6H30M`), integers only. Months and years are refused: they have no fixed length, and
  silently reading `P1M` as 30 days would move a wait by up to three days. Bounded by
  `MAX_DURATION`; positive unless the field says otherwise. Responses write durations in
  days and a time part (`P3D`, `PT2H`, `P1DT6H`, `PT1M30S`, `P400D`, `-P7D`): what pydantic
  writes below a year, never its `P1Y` for 365 days, so every response reads back as input.
- Time zones: IANA names (`Europe/Paris`, `UTC`), not the host aliases a zoneinfo directory
  also holds (`localtime`, `posixrules`, `Factory`).
- Query instants: RFC 3339 date-times with an offset (`Z` or `+02:00`), never epoch numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import Query
from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from app.core.schemas import to_utc

MAX_DURATION = timedelta(days=3660)
# Validation context for reading back what was stored under older, looser rules (a published
# sequence version): such values stay readable, and are never accepted again from a client.
STORED: dict[str, Any] = {"stored": True}


def _reading_stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and info.context.get("stored") is True


# The parser's regex: at least one part, a `T` only before a time part, whole numbers.
DURATION_PATTERN = (
    r"^(?P<sign>-)?P(?!$)(?:(?P<w>\d{1,5})W)?(?:(?P<d>\d{1,5})D)?"
    r"(?:T(?=\d)(?:(?P<h>\d{1,6})H)?(?:(?P<m>\d{1,7})M)?(?:(?P<s>\d{1,9})S)?)?$"
)
_DURATION_RE = re.compile(DURATION_PATTERN)
# The same language without lookaheads or named groups, for OpenAPI (ECMA-262) and the
# generators that read it (schemathesis); `tests/core/test_grammar.py` checks they agree.
_TIME_PART = r"T(?:\d{1,6}H(?:\d{1,7}M)?(?:\d{1,9}S)?|\d{1,7}M(?:\d{1,9}S)?|\d{1,9}S)"
_DATE_PART = r"(?:\d{1,5}W(?:\d{1,5}D)?|\d{1,5}D)"
JSON_DURATION_PATTERN = rf"^P(?:{_DATE_PART}(?:{_TIME_PART})?|{_TIME_PART})$"
# `P1M`, `P1Y2M`, `P1Y2M3DT4H`: what a calendar duration looks like, to say why it is refused.
_CALENDAR_RE = re.compile(r"^-?P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T.*)?$")
DURATION_HELP = (
    "an ISO 8601 duration in weeks, days, hours, minutes or seconds such as `P3D`, `PT12H` or "
    "`P1DT6H` (whole numbers)"
)
CALENDAR_HELP = (
    "months and years are refused (they have no fixed length): use days or weeks, e.g. `P30D` "
    "or `P52W`"
)


def duration_problem(text: str, *, signed: bool = False) -> str | None:
    """Why `text` is not a duration of this grammar (None when it is one)."""
    if _DURATION_RE.match(text):
        if text.startswith("-") and not signed:
            return "a duration cannot be negative"
        return None
    calendar = _CALENDAR_RE.match(text)
    if calendar and (calendar.group(1) or calendar.group(2)):
        return CALENDAR_HELP
    return f"expected {DURATION_HELP}"


def parse_duration(text: str, *, signed: bool = False) -> timedelta | None:
    """The `timedelta` of `text`, or None when it is not a duration of this grammar."""
    if duration_problem(text, signed=signed) is not None:
        return None
    match = _DURATION_RE.match(text)
    assert match is not None  # checked by duration_problem
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None and k != "sign"}
    delta = timedelta(
        weeks=parts.get("w", 0),
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )
    return -delta if match.group("sign") else delta


def format_duration(delta: timedelta) -> str:
    """How responses and stored definitions write a duration: days and a time part, never
    years or months (pydantic's default writes 365 days as `P1Y`, which no client could send
    back): `P3D`, `PT2H`, `P1DT6H`, `PT1M30S`, `-P7D`, `PT0S`."""
    if delta < timedelta(0):
        return "-" + format_duration(-delta)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_text = (
        f"{seconds}.{delta.microseconds:06d}".rstrip("0")
        if delta.microseconds
        else (str(seconds) if seconds else "")
    )
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    clock += f"{second_text}S" if second_text else ""
    days = f"{delta.days}D" if delta.days else ""
    return f"P{days}T{clock}" if clock else f"P{days}" if days else "PT0S"


_LEGACY: TypeAdapter[timedelta] = TypeAdapter(timedelta)


@dataclass(frozen=True)
class DurationRule:
    """`Annotated[timedelta, DurationRule(...)]`: a duration field in this grammar. Positive by
    default; `allow_zero` where zero means "at once"; `signed` for offsets (`-P7D`)."""

    allow_zero: bool = False
    signed: bool = False
    maximum: timedelta = MAX_DURATION
    examples: tuple[str, ...] = ("P3D", "PT2H")

    @property
    def minimum(self) -> timedelta:
        if self.signed:
            return -self.maximum
        return timedelta(0) if self.allow_zero else timedelta(microseconds=1)

    def bounds(self) -> str:
        if self.minimum == timedelta(microseconds=1):
            return f"positive (more than zero) and at most `{format_duration(self.maximum)}`"
        return f"between `{format_duration(self.minimum)}` and `{format_duration(self.maximum)}`"

    def check(self, value: Any, info: ValidationInfo) -> timedelta:
        stored = _reading_stored(info)
        if isinstance(value, timedelta):  # built in Python (defaults, internal callers)
            delta = value
        elif isinstance(value, str):
            problem = duration_problem(value, signed=self.signed)
            if problem is not None and stored:
                # Written by pydantic's own serialiser before this grammar: 365 days or more
                # came out as `P1Y35D` (a year read back as 365 days, as it was meant).
                return _LEGACY.validate_python(value)
            if problem is not None:
                raise PydanticCustomError("invalid_duration", problem)
            parsed = parse_duration(value, signed=self.signed)
            assert parsed is not None
            delta = parsed
        else:
            raise PydanticCustomError("invalid_duration", f"expected {DURATION_HELP}, as a string")
        # A version published before this grammar may hold a zero wait (see `STORED`).
        if (delta < self.minimum and not (stored and delta >= timedelta(0))) or (
            delta > self.maximum
        ):
            raise PydanticCustomError(
                "duration_range", "the duration must be {bounds}", {"bounds": self.bounds()}
            )
        return delta

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_before_validator_function(
            self.check,
            handler(source),
            serialization=core_schema.plain_serializer_function_ser_schema(
                format_duration, when_used="json"
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # JSON Schema's `duration` format (RFC 3339) has no sign: a signed field keeps only
        # the pattern, so validators do not reject its documented negative values.
        described: JsonSchemaValue = {"type": "string"}
        if not self.signed:
            described["format"] = "duration"
        return {
            **described,
            "pattern": JSON_DURATION_PATTERN.replace("^P", "^-?P" if self.signed else "^P"),
            "description": f"ISO 8601 duration: {DURATION_HELP}; no months or years; "
            f"{self.bounds()}.",
            "examples": list(self.examples),
        }


# Waits, timeouts, windows, caps, periods: zero would make no sense there.
Duration = Annotated[timedelta, DurationRule()]


# -- time zones ------------------------------------------------------------------------------

# Entries of a zoneinfo directory that are not IANA zone names: host configuration (`localtime`
# is whatever the server's clock is set to), tzcode internals, and the `Factory` placeholder.
_NOT_IANA = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def iana_zones() -> frozenset[str]:
    return frozenset(
        name
        for name in available_timezones()
        if name not in _NOT_IANA and not name.startswith(("posix/", "right/"))
    )


def _timezone(value: str, info: ValidationInfo) -> str:
    if value not in iana_zones() and not _reading_stored(info):
        raise PydanticCustomError(
            "timezone", "timezone must be an IANA name such as Europe/Paris or UTC"
        )
    return value


Timezone = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_timezone),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 64,
            "description": "IANA time zone name (`localtime` and POSIX TZ strings are refused).",
            "examples": ["Europe/Paris", "UTC"],
        }
    ),
]


# -- instants in query strings ---------------------------------------------------------------

RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"


def parse_instant(text: str) -> datetime | None:
    """An RFC 3339 timestamp with an offset (`2026-01-31T00:00:00Z`), else None. Fractions
    beyond microseconds are truncated."""
    if not re.match(RFC3339_PATTERN, text):
        return None
    head, dot, rest = text.partition(".")
    if dot:
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits.group()[:6].ljust(6, '0')}{rest[len(digits.group()) :]}"
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _query_instant(value: Any) -> datetime:
    parsed = parse_instant(value) if isinstance(value, str) else None
    if parsed is None:
        raise PydanticCustomError(
            "rfc3339",
            "expected an RFC 3339 timestamp with an offset, e.g. 2026-01-31T00:00:00Z",
        )
    try:
        return to_utc(parsed)
    except ValueError as exc:
        raise PydanticCustomError("instant_range", "the instant is out of range") from exc


# A query-string instant: RFC 3339 with `Z` or an offset, normalised to UTC.
QueryInstant = Annotated[
    datetime,
    BeforeValidator(_query_instant),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339_PATTERN,
            "examples": ["2026-01-31T00:00:00Z"],
        }
    ),
]


# Time-range filters of lists, one convention (docs/api.md): `<field>_after` keeps items at
# or after the instant, `<field>_before` items strictly before it, so consecutive windows
# [a, b), [b, c) neither overlap nor leave a gap.
def _bound(field: str, relation: str, example: str) -> Any:
    return Query(
        description=f"Only items whose `{field}` is {relation} this RFC 3339 instant.",
        examples=[example],
    )


def after(field: str) -> Any:
    return _bound(field, "at or after (inclusive)", "2026-01-01T00:00:00Z")


def before(field: str) -> Any:
    return _bound(field, "before (exclusive)", "2026-02-01T00:00:00Z")


# `?from=&to=` of the reports (attribution, overview): not lists but one figure over a window,
# [from, to); a 30-day default window.
RangeFrom = Annotated[
    QueryInstant | None,
    Query(
        alias="from",
        description="Range start (inclusive; RFC 3339 with offset). Default: `to` - 30 days.",
        examples=["2030-01-01T00:00:00Z"],
    ),
]
RangeTo = Annotated[
    QueryInstant | None,
    Query(
        alias="to",
        description="Range end (exclusive). Default: now.",
        examples=["2030-01-31T00:00:00Z"],
    ),
]
