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

import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.cli import OPENAPI_PATH
from tests.contract import checks

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


def test_the_python_client_covers_every_operation_with_typed_bodies(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    client = checks.generate_python_client(SPEC, tmp_path / "client")
    assert client.warnings == []
    assert client.generated == client.operations_in_spec == len(list(checks.operations(document)))
    assert client.untyped == []
    assert client.dropped_schemas == []
    problem = (tmp_path / "client" / "models" / "problem.py").read_text()
    assert "request_id" in problem
    assert "errors" in problem


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
