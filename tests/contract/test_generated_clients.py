"""Clients generated from openapi/openapi.json are whole, and the document lints clean.

- Python: openapi-python-client (pinned in tools/pyclient) generates every operation, every
  schema, and a typed body for every answer but binary ones, with no warning.
- TypeScript (where Node.js is installed): openapi-typescript types, and a small program
  (tools/contract/ts/client-check.ts) calling three operations and reading a Problem, compile
  under `tsc --strict`.
- Redocly's recommended ruleset: no error; the warnings left are the ones docs/api.md lists
  and justifies, no more.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.cli import OPENAPI_PATH
from tests.fixtures import contract as checks
from tests.fixtures.clients import client_for
from tests.fixtures.tenants import Tenant

SPEC = Path(OPENAPI_PATH)
# Justified in docs/api.md ("Lint warnings we keep").
ACCEPTED_REDOCLY_WARNINGS = {
    "no-ambiguous-paths": 3,
    "operation-4xx-response": 3,
    "operation-2xx-response": 1,
    "info-license": 1,
    "no-unused-components": 1,
}
NO_NODE = checks.node_tools_available()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC.read_text())
    return loaded


@pytest.fixture(scope="module")
def node_tools() -> None:
    if NO_NODE is not None:
        pytest.skip(NO_NODE)
    checks.install_node_tools()


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, checks.PythonClient]:
    out = tmp_path_factory.mktemp("generated") / "herald_client"
    return out, checks.generate_python_client(SPEC, out)


def test_the_python_client_covers_every_operation_with_typed_bodies(
    python_client: tuple[Path, checks.PythonClient], document: dict[str, Any]
) -> None:
    out, client = python_client
    assert client.warnings == []
    assert client.generated == client.operations_in_spec == len(list(checks.operations(document)))
    assert client.untyped == []
    assert client.dropped_schemas == []
    problem = (out / "models" / "problem.py").read_text()
    assert "request_id" in problem
    assert "errors" in problem


async def test_the_python_client_parses_real_answers_and_problems(
    python_client: tuple[Path, checks.PythonClient], app: FastAPI, tenant: Tenant
) -> None:
    out, _ = python_client
    sys.path.insert(0, str(out.parent))
    try:
        generated = importlib.import_module("herald_client")
        members = importlib.import_module("herald_client.api.members.list_members")
        get_member = importlib.import_module("herald_client.api.members.get_member")
        models = importlib.import_module("herald_client.models")
    finally:
        sys.path.remove(str(out.parent))
    token = tenant.headers["Authorization"].removeprefix("Bearer ")
    client = generated.AuthenticatedClient(base_url="http://herald.test", token=token)
    http = client_for(app)  # the app in-process; the generated client's own code on top
    http.headers.update(tenant.headers)
    client.set_async_httpx_client(http)
    page = (await members.asyncio_detailed(client=client)).parsed
    assert isinstance(page, models.MemberPage)
    assert isinstance(page.data[0], models.MemberOut)
    assert page.data[0].role == models.Role.OWNER
    missing = await get_member.asyncio_detailed(client=client, member_id=uuid.uuid4())
    assert missing.status_code == 404
    problem = missing.parsed
    assert isinstance(problem, models.Problem)
    assert problem.request_id == missing.headers["x-request-id"]


@pytest.mark.usefixtures("node_tools")
def test_typescript_types_compile_a_strict_program(document: dict[str, Any]) -> None:
    types = checks.NODE_TOOLS / "ts" / "herald-api.d.ts"
    generated = checks.node_tool("openapi-typescript", str(SPEC.resolve()), "-o", str(types))
    assert generated.returncode == 0, generated.stderr[-2000:]
    source = types.read_text()
    missing = [path for path in document["paths"] if f'"{path}": {{' not in source]
    assert missing == []
    assert source.count('"application/problem+json": components["schemas"]["Problem"]') > 1000
    compiled = checks.node_tool("tsc", "-p", "ts/tsconfig.json")
    assert compiled.returncode == 0, compiled.stdout[-4000:]


@pytest.mark.usefixtures("node_tools")
def test_a_type_error_in_the_program_fails_the_compile(tmp_path: Path) -> None:
    program = (checks.NODE_TOOLS / "ts" / "client-check.ts").read_text()
    broken = checks.NODE_TOOLS / "ts" / "broken-check.ts"
    broken.write_text(re.sub(r"error\.status === 422", "error.status === '422'", program))
    config = checks.NODE_TOOLS / "ts" / "tsconfig.broken.json"
    config.write_text(
        json.dumps({"extends": "./tsconfig.json", "files": ["broken-check.ts"]}, indent=2)
    )
    try:
        compiled = checks.node_tool("tsc", "-p", "ts/tsconfig.broken.json")
    finally:
        broken.unlink()
        config.unlink()
    assert compiled.returncode != 0
    assert "broken-check.ts" in compiled.stdout


@pytest.mark.usefixtures("node_tools")
def test_redocly_recommended_finds_no_error_and_only_the_accepted_warnings() -> None:
    result = checks.redocly_lint(SPEC)
    assert result.errors == {}, result.output[-4000:]
    assert result.warnings == ACCEPTED_REDOCLY_WARNINGS, result.output[-4000:]
