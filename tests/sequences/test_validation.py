"""Sequence validation: one test per rule, each asserting the JSON pointer of the problem.

Shape errors are refused at save (422); graph and reference errors are saved in the draft
and reported by GET /v1/sequences/{id}/validation (and block publishing)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.tenants import Tenant
from tests.sequences.helpers import create_sequence, problems, template, welcome

STEPS = "/definition/steps"


def send(key: str, template_id: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": "send", "channel": "email", "template_id": template_id, **extra}


def wait(key: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": "wait", "duration": "P1D", **extra}


def update(key: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": "update_contact", "attributes": {"seen": True}, **extra}


def exit_step(key: str = "done") -> dict[str, Any]:
    return {"key": key, "type": "exit"}


async def test_the_welcome_sequence_is_valid(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first, second = await template(client, tenant), await template(client, tenant)
    assert await problems(client, tenant, welcome(first, second)) == set()


async def test_step_keys_are_unique(client: httpx.AsyncClient, tenant: Tenant) -> None:
    found = await problems(client, tenant, {"steps": [update("a"), update("a"), exit_step()]})
    assert found == {(f"{STEPS}/1/key", "duplicate_key")}


async def test_variant_keys_are_unique_within_a_step(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    one = await template(client, tenant)
    variants = [{"key": "a", "template_id": one}, {"key": "a", "template_id": one}]
    step = {"key": "s", "type": "send", "channel": "email", "variants": variants}
    found = await problems(client, tenant, {"steps": [step]})
    assert found == {(f"{STEPS}/0/variants/1/key", "duplicate_key")}


async def test_every_target_exists(client: httpx.AsyncClient, tenant: Tenant) -> None:
    definition = {
        "entry": "nowhere",
        "steps": [
            update("u", next="missing_next"),
            {
                "key": "w",
                "type": "wait_for_event",
                "event_type": "email.replied",
                "timeout": "P3D",
                "on_event": "missing_event",
                "on_timeout": "missing_timeout",
            },
            {
                "key": "b",
                "type": "branch",
                "condition": {"consent": {"channel": "email", "status": "subscribed"}},
                "then": "missing_then",
                "else": "missing_else",
            },
        ],
    }
    found = await problems(client, tenant, definition)
    assert found == {
        ("/definition/entry", "unknown_step"),
        (f"{STEPS}/0/next", "unknown_step"),
        (f"{STEPS}/1/on_event", "unknown_step"),
        (f"{STEPS}/1/on_timeout", "unknown_step"),
        (f"{STEPS}/2/then", "unknown_step"),
        (f"{STEPS}/2/else", "unknown_step"),
    }


async def test_unreachable_steps_are_reported(client: httpx.AsyncClient, tenant: Tenant) -> None:
    # `orphan` follows an exit (no implicit `next`) and nothing names it; `late` is only
    # reached from `orphan`, which does not make it reachable.
    definition = {"steps": [update("a"), exit_step(), update("orphan"), update("late")]}
    found = await problems(client, tenant, definition)
    assert found == {(f"{STEPS}/2", "unreachable"), (f"{STEPS}/3", "unreachable")}


async def test_explicit_entry_changes_what_is_reachable(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    definition = {"entry": "b", "steps": [update("a"), update("b"), exit_step()]}
    assert await problems(client, tenant, definition) == {(f"{STEPS}/0", "unreachable")}


async def test_a_loop_without_a_wait_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    definition = {"steps": [update("a"), update("b", next="a")]}
    found = await problems(client, tenant, definition)
    assert found == {(f"{STEPS}/1/next", "cycle_without_wait")}


async def test_a_branch_looping_on_itself_is_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    branch = {
        "key": "b",
        "type": "branch",
        "condition": {"consent": {"channel": "email", "status": "subscribed"}},
        "then": "b",
        "else": "done",
    }
    found = await problems(client, tenant, {"steps": [branch, exit_step()]})
    assert found == {(f"{STEPS}/0/then", "cycle_without_wait")}


async def test_a_loop_through_a_wait_is_fine(client: httpx.AsyncClient, tenant: Tenant) -> None:
    nudge = await template(client, tenant)
    definition = {"steps": [send("nudge", nudge), update("count"), wait("pause", next="nudge")]}
    assert await problems(client, tenant, definition) == set()


async def test_a_wait_that_can_end_at_once_does_not_break_a_loop(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Inside its window an `until_window` wait goes on at once: the loop would spin."""
    window = {"start": "09:00", "end": "11:00"}
    definition = {
        "steps": [
            update("count"),
            {"key": "morning", "type": "wait", "until_window": window, "next": "count"},
        ]
    }
    found = await problems(client, tenant, definition)
    assert found == {(f"{STEPS}/1/next", "cycle_without_wait")}


async def test_a_zero_wait_loop_is_refused_by_its_duration(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Regression (issue 15.7): `update_contact -> wait PT0S -> back` validated, published
    and ran forever. A zero wait is no longer a duration."""
    for zero in ("PT0S", "P0D", "PT0M", "0", 0, False):
        definition = {"steps": [update("count"), wait("pause", duration=zero, next="count")]}
        response = await client.post(
            "/v1/sequences", json={"name": "x", "definition": definition}, headers=tenant.headers
        )
        assert response.status_code == 422, zero
        [error] = response.json()["errors"]
        assert error["pointer"] == f"{STEPS}/1/wait/duration", zero
        assert error["code"] in ("duration_range", "invalid_duration"), zero


async def test_a_loop_through_a_branch_alone_is_refused_and_not_published(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """`update_contact -> branch -> back` with no wait: refused as a cycle, at publish too."""
    branch = {
        "key": "check",
        "type": "branch",
        "condition": {"consent": {"channel": "email", "status": "subscribed"}},
        "then": "count",
        "else": "done",
    }
    definition = {"steps": [update("count"), branch, exit_step()]}
    sequence = await create_sequence(client, tenant, definition)
    url = f"/v1/sequences/{sequence['id']}"
    report = (await client.get(f"{url}/validation", headers=tenant.headers)).json()
    [error] = report["errors"]
    assert (error["pointer"], error["code"]) == (f"{STEPS}/1/then", "cycle_without_wait")
    assert "count -> check" in error["message"]
    published = await client.post(f"{url}/publish", headers=tenant.headers)
    assert published.status_code == 422
    assert [e["code"] for e in published.json()["errors"]] == ["cycle_without_wait"]
    versions = await client.get(f"{url}/versions", headers=tenant.headers)
    assert versions.json()["data"] == []


async def test_a_loop_through_a_wait_for_event_is_fine(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    listen = {
        "key": "listen",
        "type": "wait_for_event",
        "event_type": "email.replied",
        "timeout": "PT1M",
        "on_event": "done",
        "on_timeout": "count",
    }
    definition = {"steps": [update("count"), listen, exit_step()]}
    assert await problems(client, tenant, definition) == set()


async def test_templates_exist(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await template(client, other_tenant)  # another workspace's: unknown here
    missing = "0190f3c8-8d2e-7b61-9a55-000000000000"
    found = await problems(client, tenant, {"steps": [send("a", theirs), send("b", missing)]})
    assert found == {
        (f"{STEPS}/0/template_id", "unknown_template"),
        (f"{STEPS}/1/template_id", "unknown_template"),
    }


async def test_templates_are_published(client: httpx.AsyncClient, tenant: Tenant) -> None:
    draft = await template(client, tenant, publish=False)
    found = await problems(client, tenant, {"steps": [send("a", draft)]})
    assert found == {(f"{STEPS}/0/template_id", "template_unpublished")}


async def test_send_templates_match_the_channel(client: httpx.AsyncClient, tenant: Tenant) -> None:
    email = await template(client, tenant, "email")
    sms = await template(client, tenant, "sms")
    sms_step = {"key": "b", "type": "send", "channel": "sms", "template_id": email}
    variants = [{"key": "x", "template_id": email}, {"key": "y", "template_id": sms}]
    ab = {"key": "c", "type": "send", "channel": "email", "variants": variants}
    found = await problems(client, tenant, {"steps": [send("a", email), sms_step, ab]})
    assert found == {
        (f"{STEPS}/1/template_id", "template_channel"),
        (f"{STEPS}/2/variants/1/template_id", "template_channel"),
    }


async def test_webhook_templates_are_webhook_templates(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    email = await template(client, tenant, "email")
    hook = await template(client, tenant, "webhook")
    url = "https://crm.test/hook"
    steps = [
        {"key": "a", "type": "webhook", "url": url, "template_id": hook},
        {"key": "b", "type": "webhook", "url": url, "template_id": email},
        {"key": "c", "type": "webhook", "url": url},
    ]
    found = await problems(client, tenant, {"steps": steps})
    assert found == {(f"{STEPS}/1/template_id", "template_channel")}


async def test_wait_for_event_filters_parse(client: httpx.AsyncClient, tenant: Tenant) -> None:
    step = {
        "key": "w",
        "type": "wait_for_event",
        "event_type": "purchase",
        "where": [
            {"property": "revenue", "op": "gt", "value": 100},
            {"property": "plan", "op": "resembles", "value": "pro"},
        ],
        "timeout": "P3D",
        "on_event": "done",
        "on_timeout": "done",
    }
    found = await problems(client, tenant, {"steps": [step, exit_step()]})
    assert {pointer for pointer, _ in found} == {f"{STEPS}/0/where/1/op"}


async def test_branch_conditions_parse(client: httpx.AsyncClient, tenant: Tenant) -> None:
    condition = {"all": [{"consent": {"channel": "email"}}, {"attribute": {"op": "eq"}}]}
    branch = {"key": "b", "type": "branch", "condition": condition, "then": "d", "else": "d"}
    found = await problems(client, tenant, {"steps": [branch, exit_step("d")]})
    at = f"{STEPS}/0/condition/all"
    assert {pointer for pointer, _ in found} == {
        f"{at}/0/consent/status",
        f"{at}/1/attribute/field",
    }


async def test_segments_exist(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await client.post(
        "/v1/segments", json={"name": "VIP", "kind": "static"}, headers=tenant.headers
    )
    theirs = await client.post(
        "/v1/segments", json={"name": "VIP", "kind": "static"}, headers=other_tenant.headers
    )
    mine_id, theirs_id = mine.json()["id"], theirs.json()["id"]
    condition = {"any": [{"segment": {"id": mine_id}}, {"not": {"segment": {"id": theirs_id}}}]}
    steps = [
        {"key": "b1", "type": "branch", "segment_id": theirs_id, "then": "b2", "else": "b2"},
        {"key": "b2", "type": "branch", "segment_id": mine_id, "then": "b3", "else": "b3"},
        {"key": "b3", "type": "branch", "condition": condition, "then": "d", "else": "d"},
        exit_step("d"),
    ]
    rules = [{"on": "left_segment", "segment_id": theirs_id}, {"on": "replied"}]
    found = await problems(client, tenant, {"steps": steps, "settings": {"exit_rules": rules}})
    assert found == {
        (f"{STEPS}/0/segment_id", "unknown_segment"),
        (f"{STEPS}/2/condition/any/1/not/segment/id", "unknown_segment"),
        ("/definition/settings/exit_rules/0/segment_id", "unknown_segment"),
    }


async def test_default_timezone_is_an_iana_zone(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """Regression (issue 16): `localtime` (the server's own zone) was accepted."""
    for zone in ("Mars/Olympus", "localtime", "posixrules", "Factory", "UTC0", "CET-1CEST"):
        definition = {"steps": [exit_step()], "settings": {"default_timezone": zone}}
        response = await client.post(
            "/v1/sequences", json={"name": "x", "definition": definition}, headers=tenant.headers
        )
        assert response.status_code == 422, zone
        [error] = response.json()["errors"]
        assert (error["pointer"], error["code"]) == (
            "/definition/settings/default_timezone",
            "timezone",
        )
    for zone in ("Europe/Paris", "UTC", "America/Argentina/Buenos_Aires"):
        definition = {"steps": [exit_step()], "settings": {"default_timezone": zone}}
        assert await problems(client, tenant, definition) == set(), zone


async def test_every_problem_is_reported_at_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    draft = await template(client, tenant, publish=False)
    definition = {
        "steps": [send("a", draft), update("a"), update("b", next="ghost"), exit_step()],
    }
    found = await problems(client, tenant, definition)
    assert found == {
        (f"{STEPS}/0/template_id", "template_unpublished"),
        (f"{STEPS}/1/key", "duplicate_key"),
        (f"{STEPS}/2/next", "unknown_step"),
        (f"{STEPS}/3", "unreachable"),
    }


async def test_shape_errors_are_refused_at_save(client: httpx.AsyncClient, tenant: Tenant) -> None:
    one = "0190f3c8-8d2e-7b61-9a55-000000000000"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"steps": []}, "/definition/steps"),
        ({"steps": [{"key": "w", "type": "wait", "duration": "-P1D"}]}, "/definition/steps/0/wait"),
        ({"steps": [{"key": "x", "type": "teleport"}]}, "/definition/steps/0"),
        (
            {"steps": [{"key": "s", "type": "send", "channel": "email"}]},
            "/definition/steps/0/send",
        ),
        (
            {"steps": [{"key": "bad key", "type": "exit"}]},
            "/definition/steps/0/exit/key",
        ),
        (
            {"steps": [update("u", attributes={"note": "nul\u0000"})]},
            "/definition",
        ),
        ({"steps": [send("s", one)], "surprise": 1}, "/definition/surprise"),
    ]
    for definition, pointer in cases:
        response = await client.post(
            "/v1/sequences", json={"name": "x", "definition": definition}, headers=tenant.headers
        )
        assert response.status_code == 422, (definition, response.text)
        pointers = [error["pointer"] for error in response.json()["errors"]]
        assert any(p.startswith(pointer) for p in pointers), (definition, pointers)
    listed = await client.get("/v1/sequences", headers=tenant.headers)
    assert listed.json()["data"] == []


async def test_a_valid_looking_draft_referencing_nothing_saves(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Drafts hold graph errors: saving is not publishing."""
    created = await create_sequence(client, tenant, {"steps": [update("a", next="ghost")]})
    assert created["definition"]["steps"][0]["next"] == "ghost"
