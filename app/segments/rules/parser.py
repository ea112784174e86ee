"""Validation of a rule given as parsed JSON: every problem, each with a JSON pointer."""

from __future__ import annotations

import math
import uuid

from app.contacts.vocabulary import CHANNELS, CONSENT_STATUSES
from app.core.errors import FieldError
from app.segments.rules.nodes import (
    COUNT_KEYS,
    DATE_FIELDS,
    DATE_OPS,
    JSON_OPS,
    MAX_CHILDREN,
    MAX_CONDITIONS,
    MAX_COUNT,
    MAX_DEPTH,
    MAX_PATH_DEPTH,
    MAX_STRING,
    MAX_VALUES,
    SEGMENT_RE,
    STANDARD_FIELDS,
    STRING_FIELDS,
    STRING_OPS,
    AllNode,
    AnyNode,
    AttributeCondition,
    AttributeNode,
    AttributeValue,
    ConsentCondition,
    ConsentNode,
    EventCondition,
    EventCount,
    EventNode,
    NotNode,
    PropertyFilter,
    Rule,
    SegmentCondition,
    SegmentNode,
    duration_message,
    parse_duration,
    parse_instant,
)


def _escape(key: str) -> str:
    """A JSON pointer token; invalid Unicode is replaced so the problem document stays encodable."""
    safe = key.encode("utf-8", "replace").decode("utf-8")
    return safe.replace("~", "~0").replace("/", "~1")


class Parser:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.conditions = 0

    def fail(self, pointer: str, message: str, code: str) -> None:
        self.errors.append(FieldError(pointer=pointer, location="body", message=message, code=code))

    def obj(
        self, data: object, at: str, allowed: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, object] | None:
        if not isinstance(data, dict):
            self.fail(at, "Expected an object.", "invalid_type")
            return None
        ok = True
        for key in data:
            if key not in allowed:
                expected = ", ".join(f"`{a}`" for a in allowed)
                self.fail(
                    f"{at}/{_escape(str(key))}",
                    f"Unknown key; expected {expected}.",
                    "extra_forbidden",
                )
                ok = False
        for key in required:
            if key not in data:
                self.fail(f"{at}/{key}", f"`{key}` is required.", "missing")
                ok = False
        return data if ok else None

    def node(self, data: object, at: str, depth: int) -> Rule | None:
        kinds = ("all", "any", "not", "attribute", "event", "consent", "segment")
        if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in kinds:
            names = ", ".join(f"`{k}`" for k in kinds)
            self.fail(at, f"Expected an object with exactly one key of {names}.", "invalid_node")
            return None
        kind, body = next(iter(data.items()))
        at = f"{at}/{kind}"
        if kind in ("all", "any", "not") and depth >= MAX_DEPTH:
            self.fail(at, f"Rules nest at most {MAX_DEPTH} levels deep.", "too_deep")
            return None
        if kind in ("all", "any"):
            if not isinstance(body, list) or not body:
                self.fail(at, "Expected a non-empty list of rules.", "invalid_type")
                return None
            if len(body) > MAX_CHILDREN:
                self.fail(at, f"At most {MAX_CHILDREN} rules in one list.", "too_large")
                return None
            children = [self.node(child, f"{at}/{i}", depth + 1) for i, child in enumerate(body)]
            if any(child is None for child in children):
                return None
            kept = [child for child in children if child is not None]
            return AllNode(all=kept) if kind == "all" else AnyNode(any=kept)
        if kind == "not":
            inner = self.node(body, at, depth + 1)
            return None if inner is None else NotNode(not_=inner)
        self.conditions += 1
        if self.conditions == MAX_CONDITIONS + 1:
            self.fail(at, f"A rule holds at most {MAX_CONDITIONS} conditions.", "too_large")
        if kind == "attribute":
            attribute = self.attribute(body, at)
            return None if attribute is None else AttributeNode(attribute=attribute)
        if kind == "event":
            event = self.event(body, at)
            return None if event is None else EventNode(event=event)
        if kind == "consent":
            consent = self.consent(body, at)
            return None if consent is None else ConsentNode(consent=consent)
        segment = self.segment(body, at)
        return None if segment is None else SegmentNode(segment=segment)

    # -- leaves ---------------------------------------------------------------------------

    def attribute(self, data: object, at: str) -> AttributeCondition | None:
        body = self.obj(data, at, ("field", "op", "value"), ("field", "op"))
        if body is None:
            return None
        field = body["field"]
        if not isinstance(field, str):
            self.fail(f"{at}/field", "Expected a string.", "invalid_type")
            return None
        if field in STRING_FIELDS:
            ops: tuple[str, ...] = STRING_OPS
        elif field in DATE_FIELDS:
            ops = DATE_OPS
        elif field.startswith("attributes.") and self.path(field[11:], f"{at}/field"):
            ops = JSON_OPS
        else:
            if not field.startswith("attributes."):
                names = ", ".join(f"`{f}`" for f in STANDARD_FIELDS)
                self.fail(
                    f"{at}/field",
                    f"Unknown field; expected one of {names} or `attributes.<path>`.",
                    "unknown_field",
                )
            return None
        value = self.operator(
            body,
            at,
            ops,
            kind="date" if field in DATE_FIELDS else ("string" if ops is STRING_OPS else "json"),
        )
        if value is _INVALID:
            return None
        if field == "email_domain":
            value = _lower(value)
        return AttributeCondition(field=field, op=body["op"], value=value)

    def path(self, path: str, at: str) -> bool:
        segments = path.split(".")
        if len(segments) > MAX_PATH_DEPTH or not all(SEGMENT_RE.match(s) for s in segments):
            self.fail(
                at,
                f"Expected a dotted path of up to {MAX_PATH_DEPTH} names (letters, digits,"
                " `_`, `-`; not starting with a digit).",
                "invalid_path",
            )
            return False
        return True

    def operator(
        self, body: dict[str, object], at: str, ops: tuple[str, ...], kind: str
    ) -> AttributeValue | object:
        op = body["op"]
        if op not in ops:
            expected = ", ".join(f"`{o}`" for o in ops)
            self.fail(
                f"{at}/op",
                f"Unsupported operator here; expected one of {expected}.",
                "invalid_operator",
            )
            return _INVALID
        value = body.get("value")
        where = f"{at}/value"
        if op in ("exists", "not_exists"):
            if "value" in body and value is not None:
                self.fail(where, f"`{op}` takes no value.", "extra_forbidden")
                return _INVALID
            return None
        if "value" not in body:
            self.fail(where, f"`{op}` needs a value.", "missing")
            return _INVALID
        message = f"Expected {self.expectation(str(op), kind)}."
        if kind == "date" and op in ("within_last", "within_next"):
            message = duration_message(value)
        if not self.valid_value(str(op), kind, value):
            self.fail(where, message, "invalid_value")
            return _INVALID
        return value

    @staticmethod
    def expectation(op: str, kind: str) -> str:
        if kind == "date":
            if op == "between":
                return (
                    "a list of two RFC 3339 timestamps with offsets, earliest first, each"
                    " within years 0001-9999 in UTC"
                )
            return (
                "an RFC 3339 timestamp with an offset, e.g. `2026-01-31T00:00:00Z`, within"
                " years 0001-9999 in UTC"
            )
        if op in ("in", "not_in"):
            return f"a non-empty list of up to {MAX_VALUES} strings" + (
                "" if kind == "string" else ", numbers or booleans"
            )
        if op == "starts_with" or kind == "string":
            return f"a string of up to {MAX_STRING} characters"
        if op in ("gt", "gte", "lt", "lte"):
            return "a number or a string"
        if op == "between":
            return "a list of two numbers or two strings, lowest first"
        return "a string, number or boolean"

    @staticmethod
    def valid_value(op: str, kind: str, value: object) -> bool:
        if kind == "date":
            if op in ("within_last", "within_next"):
                return isinstance(value, str) and parse_duration(value) is not None
            if op == "between":
                if not isinstance(value, list) or len(value) != 2:
                    return False
                bounds = [parse_instant(v) if isinstance(v, str) else None for v in value]
                return bounds[0] is not None and bounds[1] is not None and bounds[0] <= bounds[1]
            return isinstance(value, str) and parse_instant(value) is not None
        scalar = _is_string if kind == "string" or op == "starts_with" else _is_scalar
        if op in ("in", "not_in"):
            return (
                isinstance(value, list)
                and 0 < len(value) <= MAX_VALUES
                and all(scalar(v) for v in value)
            )
        if op in ("gt", "gte", "lt", "lte"):
            return _is_string(value) or _is_number(value)
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                return False
            low, high = value
            same = (_is_number(low) and _is_number(high)) or (_is_string(low) and _is_string(high))
            return same and low <= high
        return scalar(value)

    def event(self, data: object, at: str) -> EventCondition | None:
        body = self.obj(data, at, ("type", "where", "count", "within"), ("type",))
        if body is None:
            return None
        ok = True
        kind = body["type"]
        if not _is_string(kind, 200) or not str(kind).strip():
            self.fail(
                f"{at}/type",
                "Expected an event type (non-empty string, up to 200 characters).",
                "invalid_value",
            )
            ok = False
        filters: list[PropertyFilter] = []
        where = body.get("where", [])
        if not isinstance(where, list) or len(where) > 20:
            self.fail(
                f"{at}/where", "Expected a list of up to 20 property filters.", "invalid_type"
            )
            ok = False
        else:
            for i, item in enumerate(where):
                found = self.property_filter(item, f"{at}/where/{i}")
                ok = ok and found is not None
                if found is not None:
                    filters.append(found)
        count = self.count(body.get("count"), f"{at}/count")
        within = body.get("within")
        if within is not None and (not isinstance(within, str) or parse_duration(within) is None):
            self.fail(
                f"{at}/within",
                duration_message(within, ", or null (ever)"),
                "invalid_duration",
            )
            ok = False
        if not ok or count is None:
            return None
        return EventCondition(type=str(kind), where=filters, count=count, within=within)

    def property_filter(self, data: object, at: str) -> PropertyFilter | None:
        body = self.obj(data, at, ("property", "op", "value"), ("property", "op"))
        if body is None:
            return None
        name = body["property"]
        if not isinstance(name, str) or not self.path(name, f"{at}/property"):
            if not isinstance(name, str):
                self.fail(f"{at}/property", "Expected a string.", "invalid_type")
            return None
        value = self.operator(body, at, JSON_OPS, kind="json")
        if value is _INVALID:
            return None
        return PropertyFilter(property=name, op=body["op"], value=value)

    def count(self, data: object, at: str) -> EventCount | None:
        if data is None:
            return EventCount()
        allowed = tuple(COUNT_KEYS)
        body = self.obj(data, at, allowed, ())
        if body is None:
            return None
        low, high = 0, None
        bounded = False
        for key, raw in body.items():
            if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= MAX_COUNT:
                self.fail(
                    f"{at}/{key}", f"Expected an integer from 0 to {MAX_COUNT}.", "invalid_value"
                )
                return None
            meaning = COUNT_KEYS[key]
            if meaning in ("min", "min_excl", "exact"):
                low = max(low, raw + (1 if meaning == "min_excl" else 0))
            if meaning in ("max", "max_excl", "exact"):
                if meaning == "max_excl" and raw == 0:
                    self.fail(f"{at}/{key}", "`lt` must be at least 1.", "invalid_value")
                    return None
                limit = raw - (1 if meaning == "max_excl" else 0)
                high = limit if high is None else min(high, limit)
            bounded = True
        if not bounded:
            self.fail(
                at,
                "Expected at least one of " + ", ".join(f"`{k}`" for k in allowed) + ".",
                "missing",
            )
            return None
        if high is not None and low > high:
            self.fail(at, "The count bounds exclude every number.", "invalid_value")
            return None
        return EventCount(min=low, max=high)

    def consent(self, data: object, at: str) -> ConsentCondition | None:
        body = self.obj(data, at, ("channel", "status"), ("channel", "status"))
        if body is None:
            return None
        ok = True
        for key, choices in (("channel", CHANNELS), ("status", CONSENT_STATUSES)):
            if body[key] not in choices:
                self.fail(
                    f"{at}/{key}",
                    "Expected one of " + ", ".join(f"`{c}`" for c in choices) + ".",
                    "invalid_value",
                )
                ok = False
        return (
            ConsentCondition(channel=str(body["channel"]), status=str(body["status"]))
            if ok
            else None
        )

    def segment(self, data: object, at: str) -> SegmentCondition | None:
        body = self.obj(data, at, ("id",), ("id",))
        if body is None:
            return None
        try:
            return SegmentCondition(
                id=uuid.UUID(str(body["id"])) if isinstance(body["id"], str) else _bad()
            )
        except ValueError:
            self.fail(f"{at}/id", "Expected a segment id (UUID).", "invalid_value")
            return None


_INVALID = object()


def _bad() -> uuid.UUID:
    raise ValueError


def _is_string(value: object, limit: int = MAX_STRING) -> bool:
    """A string PostgreSQL can store: bounded, no NUL, valid Unicode (no lone surrogates)."""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):  # before any float conversion: 10**400 is a valid JSON number
        return abs(value) < 10**15
    return math.isfinite(value) and abs(value) < 1e15


def _is_scalar(value: object) -> bool:
    return _is_string(value) or _is_number(value) or isinstance(value, bool)


def _lower(value: object) -> AttributeValue:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return [v.lower() if isinstance(v, str) else v for v in value]
    return None
