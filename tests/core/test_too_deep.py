"""Bodies nested beyond what the JSON reader handles are 422 `too_deep` with a pointer (they
were 400 "There was an error parsing the body"); nesting the reader handles meets the
models' own limits (a rule nests at most 8 levels), also `too_deep`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.json_depth import deep_pointer
from tests.fixtures.tenants import Tenant

LEAF = '{"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}}'


def nested_rule(levels: int) -> str:
    return '{"not": ' * levels + LEAF + "}" * levels


def branch_sequence(rule: str) -> str:
    return (
        '{"name": "Deep", "definition": {"steps": [{"key": "b", "type": "branch", '
        '"condition": ' + rule + ', "then": "x", "else": "x"}, {"key": "x", "type": "exit"}]}}'
    )


CASES = [
    ("/v1/segments", lambda rule: '{"name": "Deep", "rule": ' + rule + "}", "/rule"),
    ("/v1/segments/preview", lambda rule: '{"rule": ' + rule + "}", "/rule"),
    ("/v1/sequences", branch_sequence, "/definition/steps/0/condition"),
]


@pytest.mark.parametrize(("path", "body", "at"), CASES)
async def test_a_thousand_levels_is_422_too_deep_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, path: str, body: Any, at: str
) -> None:
    response = await client.post(
        path,
        content=body(nested_rule(1000)),
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert error["code"] == "too_deep"
    assert error["location"] == "body"
    assert error["pointer"].startswith(at + "/not/not")


@pytest.mark.parametrize(("path", "body", "at"), CASES)
async def test_readable_but_deep_rules_meet_the_rule_limit(
    client: httpx.AsyncClient, tenant: Tenant, path: str, body: Any, at: str
) -> None:
    response = await client.post(
        path,
        content=body(nested_rule(200)),
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    # The stored-JSON check stops it before the rule parser: the field, and where inside it.
    assert error["code"] == "too_deep"
    inside = error["message"].split("(at `")[1].split("`")[0]
    assert (error["pointer"] + inside).startswith(at + "/not/not/not")


def test_deep_pointer_names_keys_and_indexes() -> None:
    assert deep_pointer('{"a": [1, [2, {"b/c": [[["x"]]]}]]}', limit=4) == "/a/1/1/b~1c"
    assert deep_pointer('{"a": [[1]]}', limit=4) is None
    assert deep_pointer('{"k\\"ey": [[', limit=1) == '/k"ey'
