"""Rule validation: every error class, each with its JSON pointer; all problems at once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.segments.rules import (
    RULE_EXAMPLES,
    AllNode,
    EventNode,
    RuleError,
    parse_duration,
    parse_rule,
    referenced_segment_ids,
)


def errors_of(data: object) -> list[tuple[str, str]]:
    with pytest.raises(RuleError) as raised:
        parse_rule(data)
    assert all(e.location == "body" and e.message for e in raised.value.errors)
    return [(e.pointer, e.code) for e in raised.value.errors]


def attr(field: object, op: object, value: object = None, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"field": field, "op": op, **extra}
    if value is not None:
        body["value"] = value
    return {"attribute": body}


@pytest.mark.parametrize("example", RULE_EXAMPLES)
def test_examples_are_valid(example: dict[str, object]) -> None:
    parse_rule(example)


BAD: list[tuple[str, object, list[tuple[str, str]]]] = [
    ("not an object", [1], [("", "invalid_node")]),
    ("unknown kind", {"or": []}, [("", "invalid_node")]),
    ("two kinds", {"all": [], "any": []}, [("", "invalid_node")]),
    ("empty all", {"all": []}, [("/all", "invalid_type")]),
    ("any not a list", {"any": {}}, [("/any", "invalid_type")]),
    ("bad child", {"all": [attr("locale", "eq", "fr"), 7]}, [("/all/1", "invalid_node")]),
    ("unknown field", attr("plan", "eq", "pro"), [("/attribute/field", "unknown_field")]),
    ("field not string", attr(3, "eq", "x"), [("/attribute/field", "invalid_type")]),
    ("bad path", attr("attributes.0x", "eq", "x"), [("/attribute/field", "invalid_path")]),
    ("empty path part", attr("attributes.a..b", "eq", "x"), [("/attribute/field", "invalid_path")]),
    ("missing op", {"attribute": {"field": "locale"}}, [("/attribute/op", "missing")]),
    ("extra key", attr("locale", "eq", "x", unit="m"), [("/attribute/unit", "extra_forbidden")]),
    (
        "op for dates only",
        attr("locale", "before", "2026-01-01T00:00:00Z"),
        [("/attribute/op", "invalid_operator")],
    ),
    (
        "op not for dates",
        attr("created_at", "eq", "2026-01-01T00:00:00Z"),
        [("/attribute/op", "invalid_operator")],
    ),
    ("missing value", attr("locale", "eq"), [("/attribute/value", "missing")]),
    ("value on exists", attr("locale", "exists", "x"), [("/attribute/value", "extra_forbidden")]),
    ("in not a list", attr("locale", "in", "fr"), [("/attribute/value", "invalid_value")]),
    ("in empty", attr("attributes.plan", "in", []), [("/attribute/value", "invalid_value")]),
    (
        "in objects",
        attr("attributes.plan", "in", [{"a": 1}]),
        [("/attribute/value", "invalid_value")],
    ),
    ("string field number", attr("locale", "eq", 5), [("/attribute/value", "invalid_value")]),
    ("gt boolean", attr("attributes.score", "gt", True), [("/attribute/value", "invalid_value")]),
    (
        "between mixed",
        attr("attributes.score", "between", [1, "z"]),
        [("/attribute/value", "invalid_value")],
    ),
    (
        "between reversed",
        attr("attributes.score", "between", [5, 1]),
        [("/attribute/value", "invalid_value")],
    ),
    (
        "starts_with number",
        attr("attributes.plan", "starts_with", 1),
        [("/attribute/value", "invalid_value")],
    ),
    ("eq object", attr("attributes.plan", "eq", {"a": 1}), [("/attribute/value", "invalid_value")]),
    (
        "date without offset",
        attr("created_at", "before", "2026-01-01T00:00:00"),
        [("/attribute/value", "invalid_value")],
    ),
    (
        "date garbage",
        attr("created_at", "after", "yesterday"),
        [("/attribute/value", "invalid_value")],
    ),
    (
        "bad duration",
        attr("created_at", "within_last", "7 days"),
        [("/attribute/value", "invalid_value")],
    ),
    (
        "months unsupported",
        attr("created_at", "within_last", "P1M"),
        [("/attribute/value", "invalid_value")],
    ),
    (
        "huge duration",
        attr("created_at", "within_last", "P99999D"),
        [("/attribute/value", "invalid_value")],
    ),
    ("event missing type", {"event": {"within": "P7D"}}, [("/event/type", "missing")]),
    ("event empty type", {"event": {"type": " "}}, [("/event/type", "invalid_value")]),
    (
        "event bad within",
        {"event": {"type": "a", "within": "P0D"}},
        [("/event/within", "invalid_duration")],
    ),
    (
        "event count negative",
        {"event": {"type": "a", "count": {"gte": -1}}},
        [("/event/count/gte", "invalid_value")],
    ),
    (
        "event count bool",
        {"event": {"type": "a", "count": {"exactly": True}}},
        [("/event/count/exactly", "invalid_value")],
    ),
    (
        "event count unknown key",
        {"event": {"type": "a", "count": {"min": 1}}},
        [("/event/count/min", "extra_forbidden")],
    ),
    ("event count empty", {"event": {"type": "a", "count": {}}}, [("/event/count", "missing")]),
    (
        "event count impossible",
        {"event": {"type": "a", "count": {"gte": 3, "lte": 2}}},
        [("/event/count", "invalid_value")],
    ),
    (
        "event count lt 0",
        {"event": {"type": "a", "count": {"lt": 0}}},
        [("/event/count/lt", "invalid_value")],
    ),
    (
        "event where not list",
        {"event": {"type": "a", "where": {"p": 1}}},
        [("/event/where", "invalid_type")],
    ),
    (
        "event where bad op",
        {"event": {"type": "a", "where": [{"property": "p", "op": "within_last", "value": "P1D"}]}},
        [("/event/where/0/op", "invalid_operator")],
    ),
    (
        "event where bad path",
        {"event": {"type": "a", "where": [{"property": "", "op": "exists"}]}},
        [("/event/where/0/property", "invalid_path")],
    ),
    (
        "consent bad values",
        {"consent": {"channel": "fax", "status": "maybe"}},
        [("/consent/channel", "invalid_value"), ("/consent/status", "invalid_value")],
    ),
    ("consent missing", {"consent": {"channel": "email"}}, [("/consent/status", "missing")]),
    ("segment bad id", {"segment": {"id": "nope"}}, [("/segment/id", "invalid_value")]),
    ("segment id number", {"segment": {"id": 5}}, [("/segment/id", "invalid_value")]),
    (
        "NUL in a string",
        attr("attributes.plan", "eq", "a\x00b"),
        [("/attribute/value", "invalid_value")],
    ),
    ("lone surrogate", attr("locale", "in", ["\ud800"]), [("/attribute/value", "invalid_value")]),
    ("surrogate event type", {"event": {"type": "\udfff"}}, [("/event/type", "invalid_value")]),
    (
        "huge integer",
        attr("attributes.score", "gt", 10**400),
        [("/attribute/value", "invalid_value")],
    ),
    (
        "surrogate key",
        {"consent": {"channel": "email", "status": "unknown", "\ud800": 1}},
        [("/consent/?", "extra_forbidden")],
    ),
    (
        "pointer escaping",
        {"event": {"type": "a", "a/b~c": 1}},
        [("/event/a~1b~0c", "extra_forbidden")],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_rule_points_at_the_problem(data: object, expected: list[tuple[str, str]]) -> None:
    assert errors_of(data) == expected


def test_every_problem_is_reported_at_once() -> None:
    rule = {
        "all": [
            attr("attributes.plan", "in", []),
            {"any": [{"event": {"type": "x", "within": "soon"}}, {"consent": {"channel": "x"}}]},
            {"not": {"segment": {"id": "?"}}},
        ]
    }
    assert errors_of(rule) == [
        ("/all/0/attribute/value", "invalid_value"),
        ("/all/1/any/0/event/within", "invalid_duration"),
        ("/all/1/any/1/consent/status", "missing"),
        ("/all/2/not/segment/id", "invalid_value"),
    ]


def test_depth_is_bounded() -> None:
    rule: object = attr("locale", "exists")
    for _ in range(9):
        rule = {"not": rule}
    assert errors_of(rule) == [("/not" * 8 + "/not", "too_deep")]
    shallow: object = attr("locale", "exists")
    for _ in range(8):
        shallow = {"not": shallow}
    parse_rule(shallow)


def test_size_is_bounded() -> None:
    assert errors_of({"any": [attr("locale", "exists")] * 51}) == [("/any", "too_large")]
    wide = {"all": [{"any": [attr("locale", "exists")] * 50} for _ in range(3)]}
    assert errors_of(wide) == [("/all/2/any/0/attribute", "too_large")]


def test_email_domain_is_lowercased_and_counts_normalised() -> None:
    rule = parse_rule(
        {
            "all": [
                attr("email_domain", "in", ["Example.COM"]),
                {"event": {"type": "a", "count": {"gt": 1, "at_most": 4}}},
                {"event": {"type": "b"}},
            ]
        }
    )
    assert isinstance(rule, AllNode)
    assert rule.all[0].model_dump()["attribute"]["value"] == ["example.com"]
    first, second = rule.all[1], rule.all[2]
    assert isinstance(first, EventNode)
    assert isinstance(second, EventNode)
    assert (first.event.count.min, first.event.count.max) == (2, 4)
    assert (second.event.count.min, second.event.count.max) == (1, None)


def test_referenced_segment_ids_are_direct_references() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    rule = parse_rule(
        {"any": [{"segment": {"id": str(a)}}, {"not": {"all": [{"segment": {"id": str(b)}}]}}]}
    )
    assert referenced_segment_ids(rule) == {a, b}
    assert referenced_segment_ids(parse_rule(attr("locale", "exists"))) == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P7D", timedelta(days=7)),
        ("P2W", timedelta(weeks=2)),
        ("PT12H", timedelta(hours=12)),
        ("P1DT6H30M", timedelta(days=1, hours=6, minutes=30)),
        ("PT90S", timedelta(seconds=90)),
        ("P", None),
        ("PT", None),
        ("P1DT", None),
        ("P0D", None),
        ("P1Y", None),
        ("p7d", None),
    ],
)
def test_durations(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected
