"""The segment rule language: JSON in, a validated tree of frozen nodes out.

Every node is an object with exactly one key naming its kind:

    {"all": [...]}  {"any": [...]}  {"not": {...}}
    {"attribute": {"field": "attributes.plan", "op": "in", "value": ["pro", "team"]}}
    {"event": {"type": "email.clicked", "where": [...], "count": {"gte": 1}, "within": "P7D"}}
    {"consent": {"channel": "email", "status": "subscribed"}}
    {"segment": {"id": "<uuid>"}}

`parse_rule` checks the whole tree and reports every problem at once (`RuleError.errors`,
each with a JSON pointer into the rule). Semantics are documented in docs/segments-rules.md;
`app.segments.compiler` turns a rule into one SQL statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from app.segments.rules.nodes import (
    DATE_FIELDS,
    STANDARD_FIELDS,
    STRING_FIELDS,
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
    RuleError,
    Scalar,
    SegmentCondition,
    SegmentNode,
    parse_duration,
    parse_instant,
    rule_error,
)
from app.segments.rules.parser import Parser

__all__ = [
    "DATE_FIELDS",
    "RULE_EXAMPLES",
    "STANDARD_FIELDS",
    "STRING_FIELDS",
    "AllNode",
    "AnyNode",
    "AttributeCondition",
    "AttributeNode",
    "AttributeValue",
    "ConsentCondition",
    "ConsentNode",
    "EventCondition",
    "EventCount",
    "EventNode",
    "NotNode",
    "PropertyFilter",
    "Rule",
    "RuleError",
    "Scalar",
    "SegmentCondition",
    "SegmentNode",
    "iter_nodes",
    "parse_duration",
    "parse_instant",
    "parse_rule",
    "referenced_segment_ids",
    "rule_error",
]


def parse_rule(data: object) -> Rule:
    """Validate a rule given as parsed JSON; raise `RuleError` listing every problem."""
    parser = Parser()
    rule = parser.node(data, "", 0)
    if parser.errors or rule is None:
        raise RuleError(parser.errors)
    return rule


def iter_nodes(rule: Rule) -> Iterator[Rule]:
    yield rule
    if isinstance(rule, AllNode):
        for child in rule.all:
            yield from iter_nodes(child)
    elif isinstance(rule, AnyNode):
        for child in rule.any:
            yield from iter_nodes(child)
    elif isinstance(rule, NotNode):
        yield from iter_nodes(rule.not_)


def referenced_segment_ids(rule: Rule) -> set[uuid.UUID]:
    """Segments this rule references directly (not through them), for cycle checks."""
    return {node.segment.id for node in iter_nodes(rule) if isinstance(node, SegmentNode)}


RULE_EXAMPLES: list[dict[str, object]] = [
    {"attribute": {"field": "attributes.plan", "op": "in", "value": ["pro", "team"]}},
    {
        "all": [
            {"event": {"type": "email.clicked", "count": {"gte": 1}, "within": "P7D"}},
            {"not": {"event": {"type": "email.replied", "within": "P30D"}}},
            {"attribute": {"field": "attributes.plan", "op": "in", "value": ["pro", "team"]}},
        ]
    },
    {
        "any": [
            {"attribute": {"field": "email_domain", "op": "eq", "value": "example.com"}},
            {
                "all": [
                    {"attribute": {"field": "created_at", "op": "within_last", "value": "P30D"}},
                    {"attribute": {"field": "attributes.score", "op": "gte", "value": 50}},
                    {"consent": {"channel": "email", "status": "subscribed"}},
                ]
            },
        ]
    },
    {
        "event": {
            "type": "purchase",
            "where": [{"property": "revenue", "op": "gt", "value": 100}],
            "count": {"at_least": 2},
            "within": "P90D",
        }
    },
    {"segment": {"id": "0190f3c8-8d2e-7b61-9a55-000000000001"}},
]
