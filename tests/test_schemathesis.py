"""Property-based fuzzing of every operation in the app's own OpenAPI document.

Runs against a real uvicorn server: no 5xx, statuses and bodies as documented. Two phases:

- each operation alone (`test_api_conforms`): schema examples, coverage (boundary values,
  missing and wrong-typed fields) and `MAX_EXAMPLES` fuzzed cases per operation;
- the stateful phase (`test_stateful_workflows`): Schemathesis' state machine chains calls
  through the links it infers from the document (what a POST returns feeds the `{id}` of a GET,
  PATCH, DELETE or `/usage`), `STATEFUL_SCENARIOS` scenarios of up to `STATEFUL_STEPS` calls.

Budget and figures: docs/architecture.md, "Tests".
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import delete

from app.admin import admin_session
from app.config import Settings
from app.main import create_app
from app.workspaces.models import Workspace
from tests.fixtures.live import live_server
from tests.fixtures.tenants import Tenant, make_tenant


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url


@pytest.fixture
def fuzz_tenant(database_url: str) -> Iterator[Tenant]:
    async def create() -> Tenant:
        from app.core.db import create_engine, create_session_factory

        engine = create_engine(database_url, pool_size=1)
        try:
            return await make_tenant(create_session_factory(engine), "Fuzz")
        finally:
            await engine.dispose()

    async def remove(workspace_id: Any) -> None:
        async with admin_session(database_url) as session:
            await session.execute(delete(Workspace).where(Workspace.id == workspace_id))

    tenant = asyncio.run(create())
    yield tenant
    asyncio.run(remove(tenant.workspace_id))


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """Import uploads are documented as strings; send them as the raw file."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else b""


# Built at import: create_app connects to nothing until its lifespan starts.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(database_url=None, redis_url=None)).openapi()
)


# CI figures; raise them for a deeper hunt (e.g. HERALD_FUZZ_EXAMPLES=200).
MAX_EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "25"))
STATEFUL_SCENARIOS = int(os.environ.get("HERALD_FUZZ_SCENARIOS", "100"))
STATEFUL_STEPS = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: Any, base_url: str, fuzz_tenant: Tenant) -> None:
    case.call_and_validate(base_url=base_url, headers=fuzz_tenant.headers, checks=CHECKS)


Workflow: Any = schema.as_state_machine()


def test_stateful_workflows(base_url: str, fuzz_tenant: Tenant) -> None:
    """Every operation is a rule of the machine; links chain them on real ids.

    A scenario replayed by Hypothesis can draw differently because the server's state moved on
    (a bundle filled by a 201 the first time is empty after a 409 the second); like
    Schemathesis' own runner, that ends the session and a fresh one goes on. Failures are
    collected as they happen, so a restart cannot hide one."""
    failures: list[str] = []
    scenarios = 0
    linked: set[str] = set()  # operations on an id that answered 2xx: links chained them

    class HeraldWorkflow(Workflow):  # type: ignore[misc]
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1

        def before_call(self, case: Any) -> None:
            # The key wins over a generated `Authorization`: scenarios should reach the handlers.
            case.headers = {**(case.headers or {}), **fuzz_tenant.headers}

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            if 200 <= response.status_code < 300 and "{" in case.path:
                linked.add(f"{case.method} {case.path}")
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)
            except Exception as exc:
                failures.append(
                    f"{case.method} {case.formatted_path} query={case.query} "
                    f"body={str(case.body)[:500]} -> {response.status_code} "
                    f"{response.text[:300]}: {str(exc)[:500]}"
                )
                raise

    sessions = 0
    while scenarios < STATEFUL_SCENARIOS and sessions < 50:
        sessions += 1
        try:
            HeraldWorkflow.run(
                settings=settings(
                    max_examples=STATEFUL_SCENARIOS - scenarios,
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.generate],
                    database=None,
                )
            )
        except FlakyStrategyDefinition:
            if failures:
                break
            continue
        except Exception:
            if not failures:
                raise
        break
    assert failures == [], "\n".join(failures)
    assert linked, "no scenario reached an operation on a created resource"
    assert scenarios >= STATEFUL_SCENARIOS, f"{scenarios} scenarios in {sessions} sessions"


DEEP_RULE = '{"not": ' * 1000 + '{"attribute": {"field": "email", "op": "exists"}}' + "}" * 1000
HOSTILE = [
    ("POST", "/v1/segments", '{"name": "Deep", "rule": ' + DEEP_RULE + "}", 422),
    (
        "POST",
        "/v1/segments/preview",
        '{"rule": {"attribute": {"field": "created_at", "op": "before", '
        '"value": "9999-12-31T23:59:59-14:00"}}}',
        422,
    ),
    (
        "POST",
        "/v1/sequences",
        '{"name": "Leak", "definition": {"steps": [{"key": "w", "type": "webhook", '
        '"url": "http://169.254.169.254/latest/meta-data/"}]}}',
        422,
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), HOSTILE)
def test_the_issue_inputs_on_the_live_server(
    base_url: str, fuzz_tenant: Tenant, method: str, path: str, body: str, expected: int
) -> None:
    """Inputs the fuzzer cannot reach by chance (free-form rule objects, depth past the JSON
    reader) through the real server and its JSON reader: answered, never a 5xx."""
    response = httpx.request(
        method,
        base_url + path,
        content=body,
        headers={**fuzz_tenant.headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == expected, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
