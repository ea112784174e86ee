"""Property: on random data and random rules, the compiled SQL selects exactly the contacts a
small pure-Python reference evaluator (below) selects. The reference is written from the
documented semantics (docs/segments-rules.md), independently of the compiler."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.core.ids import new_id
from app.segments.compiler import SegmentRef
from app.segments.rules import (
    AllNode,
    AnyNode,
    AttributeNode,
    ConsentNode,
    EventNode,
    NotNode,
    Rule,
    SegmentNode,
    parse_duration,
    parse_instant,
    parse_rule,
)
from tests.fixtures.factories import Factory
from tests.fixtures.rows import contact_row, evaluate, event_row, insert_rows
from tests.fixtures.tenants import Tenant

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MISSING: Any = object()

STRINGS = ["free", "pro", "team", "p", "vip", "a", "", "Pro"]
NUMBERS: list[int | float] = [0, 1, 5, 7.5, 10, -2]
SCALARS = st.sampled_from([*STRINGS, *NUMBERS, True, False])
DOMAINS = ["a.io", "b.org", "A.IO"]
LOCALES = ["fr-FR", "en-US", "fr"]
ZONES = ["Europe/Paris", "America/New_York"]


# -- data -----------------------------------------------------------------------------------


@dataclass
class World:
    contacts: list[dict[str, Any]]
    events: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    static_id: uuid.UUID
    static_members: set[uuid.UUID]
    dynamic_id: uuid.UUID
    dynamic_rule: dict[str, Any]
    refs: dict[uuid.UUID, SegmentRef] = field(default_factory=dict)


json_values = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.fixed_dictionaries({}, optional={"city": st.sampled_from(["Paris", "Rome", 3])}),
)


@st.composite
def contacts(draw: st.DrawFn, workspace_id: uuid.UUID) -> dict[str, Any]:
    attributes = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "plan": st.sampled_from(["free", "pro", "team", "Pro", 3]),
                "score": st.sampled_from([*NUMBERS, "5", "high", True]),
                "tags": json_values,
                "address": json_values,
                "flag": st.booleans(),
            },
        )
    )
    local = draw(st.sampled_from(["x", "pro", "vip"]))
    email = draw(st.none() | st.sampled_from(DOMAINS).map(lambda d: f"{local}@{d}"))
    return contact_row(
        workspace_id,
        id=new_id(),
        email=email,
        external_id=draw(st.none() | st.sampled_from(["e1", "e2", "pro-1"])),
        locale=draw(st.none() | st.sampled_from(LOCALES)),
        timezone=draw(st.none() | st.sampled_from(ZONES)),
        created_at=NOW + draw(st.integers(-60 * 24, 10 * 24)) * HOUR,
        last_activity_at=draw(st.none() | st.integers(-60 * 24, 0).map(lambda h: NOW + h * HOUR)),
        erased_at=NOW if draw(st.integers(0, 9)) == 0 else None,
        attributes=attributes,
    )


@st.composite
def worlds(draw: st.DrawFn, workspace_id: uuid.UUID) -> World:
    people = draw(st.lists(contacts(workspace_id), min_size=3, max_size=20))
    for i, person in enumerate(people):  # unique per workspace, like the real constraints
        person["external_id"] = (
            None if person["external_id"] is None else f"{person['external_id']}{i}"
        )
        person["email"] = None if person["email"] is None else f"{i}{person['email']}"
        if person["email"] is None and person["external_id"] is None:
            person["external_id"] = f"id{i}"
    events: list[dict[str, Any]] = []
    consents: list[dict[str, Any]] = []
    for person in people:
        for _ in range(draw(st.integers(0, 4))):
            props = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "n": st.sampled_from(NUMBERS),
                        "k": st.sampled_from(STRINGS),
                        # numeric only, as ingestion enforces; compiled to `events.revenue`
                        "revenue": st.sampled_from(NUMBERS),
                    },
                )
            )
            at = NOW + draw(st.integers(-40 * 24, 2 * 24)) * HOUR
            kind = draw(st.sampled_from(["a", "b", "c"]))
            events.append(event_row(workspace_id, person["id"], kind, at, **props))
        for channel in ("email", "sms"):
            status = draw(st.sampled_from([None, "subscribed", "unsubscribed", "unknown"]))
            if status is not None:
                consents.append(
                    {
                        "workspace_id": workspace_id,
                        "contact_id": person["id"],
                        "channel": channel,
                        "status": status,
                        "changed_at": NOW,
                    }
                )
    members = {p["id"] for p in people if draw(st.booleans())}
    return World(people, events, consents, new_id(), members, new_id(), draw(rules(None)))


# -- rules ----------------------------------------------------------------------------------


def attr(field_: str, op: str, value: object = None) -> dict[str, Any]:
    body: dict[str, Any] = {"field": field_, "op": op}
    if op not in ("exists", "not_exists"):
        body["value"] = value
    return {"attribute": body}


def json_ops(target: str) -> st.SearchStrategy[dict[str, Any]]:
    def build(op: str, draw_value: Any) -> dict[str, Any]:
        return {"field" if target else "property": target, "op": op, "value": draw_value}

    numbers = st.sampled_from(NUMBERS)
    strings = st.sampled_from(STRINGS)
    ordered = st.one_of(
        st.lists(numbers, min_size=2, max_size=2).map(sorted),
        st.lists(strings, min_size=2, max_size=2).map(sorted),
    )
    return st.one_of(
        st.tuples(st.sampled_from(["eq", "neq", "contains"]), SCALARS),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(SCALARS, min_size=1, max_size=3)),
        st.tuples(st.just("starts_with"), strings),
        st.tuples(st.sampled_from(["gt", "gte", "lt", "lte"]), numbers | strings),
        st.tuples(st.just("between"), ordered),
        st.tuples(st.sampled_from(["exists", "not_exists"]), st.none()),
    ).map(lambda pair: {k: v for k, v in build(*pair).items() if v is not None})


def attribute_leaves() -> st.SearchStrategy[dict[str, Any]]:
    paths = ["plan", "score", "tags", "address", "address.city", "flag", "nothing"]
    on_attributes = st.tuples(st.sampled_from(paths), json_ops("x")).map(
        lambda pair: {"attribute": {**pair[1], "field": f"attributes.{pair[0]}"}}
    )
    pools = {
        "email": ["x@a.io", "pro", "@a", "x"],
        "email_domain": DOMAINS,
        "external_id": ["e1", "pro", "e"],
        "locale": LOCALES,
        "timezone": ZONES,
    }
    strings = st.sampled_from(sorted(pools)).flatmap(
        lambda f: st.one_of(
            st.tuples(
                st.sampled_from(["eq", "neq", "contains", "starts_with"]),
                st.sampled_from(pools[f]),
            ),
            st.tuples(
                st.sampled_from(["in", "not_in"]),
                st.lists(st.sampled_from(pools[f]), min_size=1, max_size=2),
            ),
            st.tuples(st.sampled_from(["exists", "not_exists"]), st.none()),
        ).map(lambda pair: attr(f, pair[0], pair[1]))
    )
    instants = st.integers(-70 * 24, 12 * 24).map(
        lambda h: (NOW + h * HOUR).isoformat().replace("+00:00", "Z")
    )
    durations = st.integers(1, 60).flatmap(lambda n: st.sampled_from([f"P{n}D", f"PT{n}H"]))
    dates = st.tuples(
        st.sampled_from(["created_at", "last_activity_at"]), st.integers(0, 3)
    ).flatmap(
        lambda pair: [
            st.tuples(st.sampled_from(["before", "after"]), instants),
            st.tuples(st.just("between"), st.lists(instants, min_size=2, max_size=2).map(sorted)),
            st.tuples(st.sampled_from(["within_last", "within_next"]), durations),
            st.tuples(st.sampled_from(["exists", "not_exists"]), st.none()),
        ][pair[1]].map(lambda op_value: attr(pair[0], op_value[0], op_value[1]))
    )
    return st.one_of(on_attributes, strings, dates)


def event_leaves() -> st.SearchStrategy[dict[str, Any]]:
    counts = st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["gte", "gt", "lte", "eq", "at_least", "at_most", "exactly"]),
            st.integers(0, 3),
            min_size=1,
            max_size=1,
        ),
        st.integers(0, 2).flatmap(
            lambda low: st.integers(low + 1, 4).map(lambda high: {"gte": low, "lt": high})
        ),
    )
    filters = st.lists(
        st.tuples(st.sampled_from(["n", "k", "revenue"]), json_ops("")).map(
            lambda pair: {**pair[1], "property": pair[0]}
        ),
        max_size=2,
    )
    within = st.none() | st.integers(1, 30).map(lambda d: f"P{d}D")
    return st.builds(
        lambda t, c, w, f: {
            "event": {"type": t, "within": w, "where": f, **({} if c is None else {"count": c})}
        },
        st.sampled_from(["a", "b", "c"]),
        counts,
        within,
        filters,
    )


def rules(segment_ids: Sequence[uuid.UUID] | None) -> st.SearchStrategy[dict[str, Any]]:
    consent = st.builds(
        lambda c, s: {"consent": {"channel": c, "status": s}},
        st.sampled_from(["email", "sms"]),
        st.sampled_from(["subscribed", "unsubscribed", "unknown"]),
    )
    leaves = st.one_of(attribute_leaves(), event_leaves(), consent)
    if segment_ids:
        segments = st.sampled_from(list(segment_ids)).map(lambda i: {"segment": {"id": str(i)}})
        leaves = st.one_of(leaves, segments)
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
            children.map(lambda c: {"not": c}),
        ),
        max_leaves=6,
    )


# -- the reference evaluator ---------------------------------------------------------------------


def is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def same(x: object, v: object) -> bool:
    """JSON equality: typed (a string never equals a number), numbers compared by value."""
    if isinstance(x, bool) or isinstance(v, bool):
        return isinstance(x, bool) and isinstance(v, bool) and x == v
    if is_number(v):
        return is_number(x) and Decimal(str(x)) == Decimal(str(v))
    return isinstance(x, str) and x == v


def walk(document: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


NEGATIONS = {"neq": "eq", "not_in": "in", "not_exists": "exists"}


def json_match(document: Mapping[str, Any], path: Sequence[str], op: str, value: Any) -> bool:
    if op in NEGATIONS:
        return not json_match(document, path, NEGATIONS[op], value)
    x = walk(document, path)
    if op == "eq":
        return x is not MISSING and same(x, value)
    if op == "in":
        return any(json_match(document, path, "eq", v) for v in value)
    if op == "exists":
        return x is not MISSING and x is not None
    if op == "contains":
        in_list = isinstance(x, list) and any(same(e, value) for e in x)
        return in_list or (isinstance(x, str) and isinstance(value, str) and value in x)
    if op == "starts_with":
        return isinstance(x, str) and x.startswith(value)
    bounds = value if isinstance(value, list) else [value]
    at: Any
    limits: list[Any]
    if is_number(bounds[0]):
        if not is_number(x):
            return False
        at, limits = Decimal(str(x)), [Decimal(str(b)) for b in bounds]
    else:
        if not isinstance(x, str):
            return False
        at, limits = x, bounds  # code-point order, like COLLATE "C"
    return bool(
        {
            "gt": lambda: at > limits[0],
            "gte": lambda: at >= limits[0],
            "lt": lambda: at < limits[0],
            "lte": lambda: at <= limits[0],
            "between": lambda: limits[0] <= at <= limits[1],
        }[op]()
    )


def standard_match(contact: Mapping[str, Any], field_: str, op: str, value: Any) -> bool:
    if op in NEGATIONS:
        return not standard_match(contact, field_, NEGATIONS[op], value)
    if field_ == "email_domain":
        email = contact["email"]
        x = None if email is None else email.split("@")[1].lower()
    else:
        x = contact[field_]
    if op == "exists":
        return x is not None
    if x is None:
        return False
    if field_ in ("created_at", "last_activity_at"):
        if op in ("within_last", "within_next"):
            delta = parse_duration(value)
            assert delta is not None
            low, high = (NOW - delta, NOW) if op == "within_last" else (NOW, NOW + delta)
            return bool(low <= x <= high)
        if op == "between":
            return bool(parse_instant(value[0]) <= x <= parse_instant(value[1]))
        instant = parse_instant(value)
        assert instant is not None
        return bool(x < instant if op == "before" else x > instant)
    if op == "eq":
        return bool(x == value)
    if op == "in":
        return x in value
    if op == "contains":
        return value in x
    return bool(x.startswith(value))


def matches(world: World, contact: Mapping[str, Any], rule: Rule) -> bool:
    if isinstance(rule, AllNode):
        return all(matches(world, contact, child) for child in rule.all)
    if isinstance(rule, AnyNode):
        return any(matches(world, contact, child) for child in rule.any)
    if isinstance(rule, NotNode):
        return not matches(world, contact, rule.not_)
    if isinstance(rule, AttributeNode):
        a = rule.attribute
        if a.path:
            return json_match(contact["attributes"], a.path, a.op, a.value)
        return standard_match(contact, a.field, a.op, a.value)
    if isinstance(rule, EventNode):
        e = rule.event
        window = None if e.within is None else parse_duration(e.within)
        count = sum(
            1
            for ev in world.events
            if ev["contact_id"] == contact["id"]
            and ev["type"] == e.type
            and (window is None or NOW - window <= ev["occurred_at"] <= NOW)
            and all(json_match(ev["properties"], f.path, f.op, f.value) for f in e.where)
        )
        return count >= e.count.min and (e.count.max is None or count <= e.count.max)
    if isinstance(rule, ConsentNode):
        c = rule.consent
        statuses = [
            row["status"]
            for row in world.consents
            if row["contact_id"] == contact["id"] and row["channel"] == c.channel
        ]
        if c.status == "unknown":
            return not any(s in ("subscribed", "unsubscribed") for s in statuses)
        return c.status in statuses
    assert isinstance(rule, SegmentNode)
    if rule.segment.id == world.static_id:
        return contact["id"] in world.static_members
    return matches(world, contact, parse_rule(world.dynamic_rule))


def reference(world: World, rule: Rule) -> set[uuid.UUID]:
    return {c["id"] for c in world.contacts if c["erased_at"] is None and matches(world, c, rule)}


# -- the property ---------------------------------------------------------------------------


@settings(
    max_examples=25,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_sql_agrees_with_reference_evaluator(
    session_factory: Factory, tenant: Tenant, data: st.DataObject
) -> None:
    ws = tenant.workspace_id
    world = data.draw(worlds(ws), label="world")
    world.refs = {
        world.static_id: SegmentRef("static", None),
        world.dynamic_id: SegmentRef("dynamic", parse_rule(world.dynamic_rule)),
    }
    segments = [
        {"id": world.static_id, "workspace_id": ws, "name": "S", "kind": "static"},
        {"id": world.dynamic_id, "workspace_id": ws, "name": "D", "kind": "dynamic"},
    ]
    memberships = [
        {"segment_id": world.static_id, "contact_id": c, "workspace_id": ws, "entered_at": NOW}
        for c in world.static_members
    ]
    await insert_rows(
        session_factory,
        contacts=world.contacts,
        events=world.events,
        consents=world.consents,
        segments=segments,
        memberships=memberships,
    )
    try:
        for i in range(6):
            rule_json = data.draw(rules([world.static_id, world.dynamic_id]), label=f"rule {i}")
            expected = reference(world, parse_rule(rule_json))
            found = await evaluate(session_factory, rule_json, ws, NOW, world.refs)
            assert found == expected, rule_json
    finally:
        async with session_factory() as session, session.begin():
            await session.execute(text("TRUNCATE contacts, segments CASCADE"))
