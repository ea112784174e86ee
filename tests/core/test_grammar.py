"""The one input grammar (app/core/grammar.py): durations, IANA zones, query instants.

Unit tests pin the grammar; the API tests show every field that takes a duration or a zone
refuses the same spellings with the same message (issue 16 "loose input", issue 15.7)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from app.core.grammar import (
    CALENDAR_HELP,
    JSON_DURATION_PATTERN,
    STORED,
    Duration,
    DurationRule,
    QueryInstant,
    Timezone,
    format_duration,
    iana_zones,
    parse_duration,
)
from app.sequences.definition import SequenceDefinition
from tests.fixtures.factories import create_sequence
from tests.fixtures.tenants import Tenant

DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)
SIGNED: TypeAdapter[timedelta] = TypeAdapter(Annotated[timedelta, DurationRule(signed=True)])
# Each was accepted somewhere on main ("1 day", "P1DT"; P1M as P30D, P1Y kept; zero waits).
LOOSE: list[Any] = ["1 day", "P1DT", "P1M", "P1Y", "P1Y2M", "PT0S", "P0D", "0", 0, False, -1.5]
LOOSE += ["P", "PT", "p1d", "P1.5D", "PT1H ", "-P1D", "P3661D", None, [], {}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P3D", timedelta(days=3)),
        ("P2W", timedelta(weeks=2)),
        ("PT12H", timedelta(hours=12)),
        ("P1DT6H30M15S", timedelta(days=1, hours=6, minutes=30, seconds=15)),
        ("PT90S", timedelta(seconds=90)),
        ("P3660D", timedelta(days=3660)),
    ],
)
def test_durations_of_the_grammar(text: str, expected: timedelta) -> None:
    assert DURATION.validate_json(f'"{text}"') == expected
    assert parse_duration(text) == expected


def test_the_openapi_pattern_is_the_same_language() -> None:
    pattern = re.compile(JSON_DURATION_PATTERN)
    samples = ["P3D", "P2W", "P2W3D", "PT1H", "PT1M", "PT1S", "P1DT1H1M1S", "PT1H1S", "P1W1D"]
    samples += ["P", "PT", "P1DT", "P1D1W", "PT1S1M", "P1M", "P1Y", "1 day", "P1.5D", "-P1D"]
    for text in samples:
        assert bool(pattern.match(text)) == (parse_duration(text) is not None), text


@pytest.mark.parametrize("loose", LOOSE)
def test_loose_durations_are_refused(loose: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        DURATION.validate_python(loose)
    [error] = raised.value.errors()
    assert error["type"] in ("invalid_duration", "duration_range")


@pytest.mark.parametrize("calendar", ["P1M", "P1Y", "P1Y2M3DT4H", "-P1M"])
def test_months_and_years_get_one_clear_message(calendar: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SIGNED.validate_python(calendar)
    assert raised.value.errors()[0]["msg"] == CALENDAR_HELP


def test_signed_offsets_and_zero_where_zero_makes_sense() -> None:
    assert SIGNED.validate_python("-P7D") == timedelta(days=-7)
    assert SIGNED.validate_python("PT0S") == timedelta(0)
    zero_ok: TypeAdapter[timedelta] = TypeAdapter(
        Annotated[timedelta, DurationRule(allow_zero=True)]
    )
    assert zero_ok.validate_python("PT0S") == timedelta(0)
    with pytest.raises(ValidationError):
        zero_ok.validate_python("-P1D")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=3), "P3D"),
        (timedelta(hours=2), "PT2H"),
        (timedelta(days=1, hours=6), "P1DT6H"),
        (timedelta(seconds=90), "PT1M30S"),
        (timedelta(days=-7), "-P7D"),
        (timedelta(0), "PT0S"),
        # pydantic's default writes `P1Y` here, which no client could send back.
        (timedelta(days=365), "P365D"),
        (timedelta(days=3660), "P3660D"),
    ],
)
def test_responses_write_what_the_grammar_reads(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert SIGNED.dump_json(delta).decode() == f'"{text}"'
    assert SIGNED.validate_json(f'"{text}"') == delta


def test_a_version_published_with_a_zero_wait_still_loads_for_the_engine() -> None:
    """Stored under the old rules: readable with `STORED`, refused from a client."""
    stored = {
        "steps": [
            {"key": "pause", "type": "wait", "duration": "PT0S", "next": "long"},
            # How pydantic wrote 400 days before this grammar.
            {"key": "long", "type": "wait", "duration": "P1Y35D", "next": "done"},
            {"key": "done", "type": "exit"},
        ],
        "settings": {"default_timezone": "localtime"},
    }
    loaded = SequenceDefinition.model_validate(stored, context=STORED)
    assert loaded.steps[0].duration == timedelta(0)  # type: ignore[union-attr]
    assert loaded.steps[1].duration == timedelta(days=400)  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        SequenceDefinition.model_validate(stored)


def test_iana_zones_only() -> None:
    zones: TypeAdapter[str] = TypeAdapter(Timezone)
    for name in ("Europe/Paris", "UTC", "Etc/GMT+5", "America/Argentina/Buenos_Aires"):
        assert zones.validate_python(name) == name
    for name in ("localtime", "posixrules", "Factory", "UTC0", "EST5", "europe/paris", ""):
        with pytest.raises(ValidationError):
            zones.validate_python(name)
    assert not any(name.startswith(("posix/", "right/")) for name in iana_zones())


def test_query_instants_are_rfc_3339_with_an_offset() -> None:
    instants: TypeAdapter[datetime] = TypeAdapter(QueryInstant)
    assert instants.validate_python("2026-01-31T01:00:00+01:00") == datetime(
        2026, 1, 31, tzinfo=UTC
    )
    assert instants.validate_python("2026-01-31T00:00:00.5Z").microsecond == 500_000
    for loose in ("-1.5", "0.5", "0", "1700000000", "2026-01-31", "2026-01-31T00:00:00"):
        with pytest.raises(ValidationError):
            instants.validate_python(loose)
    with pytest.raises(ValidationError):
        instants.validate_python("0001-01-01T00:00:00+14:00")  # before year 1 in UTC


# -- over the API ----------------------------------------------------------------------------


def _messages(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e["pointer"], e["message"]) for e in response.json()["errors"]]


async def test_every_duration_field_refuses_months_with_the_same_message(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    wait = {"key": "w", "type": "wait", "duration": "P1M"}
    listen = {
        "key": "l",
        "type": "wait_for_event",
        "event_type": "email.replied",
        "timeout": "P1M",
        "on_event": "d",
        "on_timeout": "d",
    }
    cap = {"channel": "email", "max": 1, "period": "P1M"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/sequences", {"name": "s", "definition": {"steps": [wait]}}, "/duration"),
        ("/v1/sequences", {"name": "s", "definition": {"steps": [listen]}}, "/timeout"),
        (
            "/v1/sequences",
            {
                "name": "s",
                "definition": {
                    "steps": [{"key": "d", "type": "exit"}],
                    "settings": {"frequency_caps": [cap]},
                },
            },
            "/period",
        ),
        (
            "/v1/campaigns",
            {"name": "c", "goal": {"event_type": "purchase", "window": "P1M"}},
            "/goal/window",
        ),
        (
            "/v1/segments",
            {
                "name": "g",
                "kind": "dynamic",
                "rule": {"attribute": {"field": "created_at", "op": "within_last", "value": "P1M"}},
            },
            "/rule/attribute/value",
        ),
        (
            "/v1/segments",
            {"name": "g", "kind": "dynamic", "rule": {"event": {"type": "a", "within": "P1Y"}}},
            "/rule/event/within",
        ),
    ]
    for path, body, pointer in cases:
        response = await client.post(path, json=body, headers=tenant.headers)
        assert response.status_code == 422, (path, body, response.text)
        found = _messages(response)
        assert any(p.endswith(pointer) and m == CALENDAR_HELP for p, m in found), (path, found)
    attribution = await client.get(
        "/v1/attribution", params={"lookback": "P1M"}, headers=tenant.headers
    )
    assert attribution.status_code == 422
    assert _messages(attribution) == [("/lookback", CALENDAR_HELP)]


async def test_durations_read_back_as_they_were_written(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A GET body can be sent back as is: 400 days is `P400D`, not pydantic's `P1Y35D`."""
    definition = {
        "steps": [
            {"key": "w", "type": "wait", "duration": "P400D"},
            {"key": "x", "type": "wait", "duration": "P2W"},
            {"key": "d", "type": "exit"},
        ]
    }
    created = await create_sequence(client, tenant, definition)
    steps = created["definition"]["steps"]
    assert [step.get("duration") for step in steps] == ["P400D", "P14D", None]
    again = await client.post(
        "/v1/sequences",
        json={"name": "copy", "definition": created["definition"]},
        headers=tenant.headers,
    )
    assert again.status_code == 201, again.text


async def test_every_timezone_field_refuses_localtime(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/contacts", {"email": "tz@acme.example", "timezone": "localtime"}, "/timezone"),
        ("/v1/campaigns", {"name": "c", "timezone": "localtime"}, "/timezone"),
        (
            "/v1/sequences",
            {
                "name": "s",
                "definition": {
                    "steps": [{"key": "d", "type": "exit"}],
                    "settings": {"default_timezone": "localtime"},
                },
            },
            "/definition/settings/default_timezone",
        ),
    ]
    preview = {"contact": {"timezone": "localtime"}}
    cases.append((f"/v1/templates/{uuid.uuid4()}/preview", preview, "/contact/timezone"))
    cases.append((f"/v1/sequences/{uuid.uuid4()}/simulate", preview, "/contact/timezone"))
    for path, body, pointer in cases:
        response = await client.post(path, json=body, headers=tenant.headers)
        assert response.status_code == 422, (path, response.text)
        [error] = response.json()["errors"]
        assert (error["pointer"], error["code"]) == (pointer, "timezone")
    contact = await client.post(
        "/v1/contacts",
        json={"email": "tz@acme.example", "timezone": "Europe/Paris"},
        headers=tenant.headers,
    )
    assert contact.status_code == 201, contact.text
