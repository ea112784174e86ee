"""Contract checks on an OpenAPI document, shared by the tests and `python -m tests.contract`.

Each check returns the list of what is wrong (empty when the document is right), so a test
asserts `== []` and the command prints the counts before/after a change.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.core.openapi import SSE_ITEM_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
NODE_TOOLS = ROOT / "tools" / "contract"
PYCLIENT_PROJECT = ROOT / "tools" / "pyclient"
PYCLIENT_CONFIG = PYCLIENT_PROJECT / "config.yml"
BASE = "urn:herald:openapi"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Bodies that are bytes, not JSON: a generated client hands them over as a file or text.
BINARY_MEDIA = ("image/", "text/csv", "text/html", "text/event-stream", "application/x-ndjson")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _pointer(parts: list[str]) -> str:
    return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def invalid_examples(document: dict[str, Any]) -> list[str]:
    """Every example (schema `examples`, media and parameter `example(s)`) that fails its
    schema, as `pointer: message`."""
    strict = _closed(copy.deepcopy(document))
    registry: Registry[Any] = Registry().with_resource(
        BASE, Resource.from_contents(strict, default_specification=DRAFT202012)
    )
    problems: list[str] = []

    def check(instance: Any, schema_pointer: str, where: str) -> None:
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"{BASE}#{schema_pointer}"},
            registry=registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        for error in validator.iter_errors(instance):
            location = "/".join(str(part) for part in error.absolute_path)
            problems.append(f"{where} at /{location}: {error.message[:160]}")

    def walk(node: Any, parts: list[str]) -> None:
        if isinstance(node, dict):
            here = _pointer(parts)
            if isinstance(node.get("examples"), list) and "schema" not in node:
                for index, example in enumerate(node["examples"]):
                    check(example, here, f"{here}/examples/{index}")
            if SSE_ITEM_SCHEMA in node and isinstance(node.get("example"), str):
                # A server-sent event stream: each `data:` line is one item.
                item_pointer = _pointer([*parts, SSE_ITEM_SCHEMA])
                for line in node["example"].splitlines():
                    if line.startswith("data: "):
                        check(json.loads(line[6:]), item_pointer, f"{here}/example data")
            if "schema" in node and isinstance(node["schema"], dict):
                schema_pointer = _pointer([*parts, "schema"])
                if "example" in node:
                    check(node["example"], schema_pointer, f"{here}/example")
                for name, example in (node.get("examples") or {}).items():
                    if isinstance(example, dict) and "value" in example:
                        check(example["value"], schema_pointer, f"{here}/examples/{name}")
            for key, value in node.items():
                walk(value, [*parts, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, [*parts, str(index)])

    for section in ("paths", "webhooks", "components"):
        walk(document.get(section, {}), [section])
    return problems


def _closed(node: Any) -> Any:
    """The document with every object schema closed (`unevaluatedProperties: false` where it
    declares properties and says nothing of others): an example with a field the API never
    sends is wrong too."""
    if isinstance(node, dict):
        if (
            isinstance(node.get("properties"), dict)
            and "additionalProperties" not in node
            and "unevaluatedProperties" not in node
        ):
            node["unevaluatedProperties"] = False
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)
    return node


def validator_for(document: dict[str, Any], pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at `pointer` of `document` (its `$ref`s resolved)."""
    registry: Registry[Any] = Registry().with_resource(
        BASE, Resource.from_contents(_closed(copy.deepcopy(document)), DRAFT202012)
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"{BASE}#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def schema_name_problems(document: dict[str, Any]) -> list[str]:
    """Component names with a module path in them, or generated to tell two models apart."""
    problems = []
    for name in document.get("components", {}).get("schemas", {}):
        if "__" in name or name.startswith("app_") or re.search(r"_\d+$", name):
            problems.append(f"{name}: module path or collision suffix in a component name")
    return problems


def model_collisions(models: list[type]) -> list[str]:
    """Two models (from different modules) that share a class name."""
    seen: dict[str, str] = {}
    problems = []
    for model in models:
        where = f"{model.__module__}.{model.__qualname__}"
        if model.__name__ in seen and seen[model.__name__] != where:
            problems.append(f"{model.__name__}: {seen[model.__name__]} and {where}")
        seen.setdefault(model.__name__, where)
    return problems


# --- The generated Python client -----------------------------------------------------------


@dataclass
class PythonClient:
    operations_in_spec: int
    generated: int
    warnings: list[str] = field(default_factory=list)
    untyped: list[str] = field(default_factory=list)
    dropped_schemas: list[str] = field(default_factory=list)


def _uv() -> str:
    return shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")


def generate_python_client(spec: Path, out: Path) -> PythonClient:
    """Generate with openapi-python-client (pinned in tools/pyclient) and audit the result."""
    command = [
        _uv(),
        "run",
        "--quiet",
        "--frozen",
        "--project",
        str(PYCLIENT_PROJECT),
        "openapi-python-client",
        "generate",
        "--path",
        str(spec),
        "--meta",
        "none",
        "--output-path",
        str(out),
        "--overwrite",
        "--config",
        str(PYCLIENT_CONFIG),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    if result.returncode != 0 and not out.exists():
        raise RuntimeError(f"openapi-python-client failed:\n{output}")
    document = json.loads(spec.read_text())
    report = PythonClient(operations_in_spec=sum(1 for _ in operations(document)), generated=0)
    report.warnings = [
        block.strip().splitlines()[0]
        for block in re.split(r"\n(?=WARNING|ERROR)", output)
        if block.strip().startswith(("WARNING", "ERROR"))
    ]
    modules = {p.stem: p for p in (out / "api").rglob("*.py") if p.stem != "__init__"}
    report.generated = len(modules)
    for path, method, operation in operations(document):
        module = modules.get(_snake(operation["operationId"]))
        if module is None:
            continue
        source = module.read_text()
        for status, response in operation["responses"].items():
            content = response.get("content", {})
            typed = [m for m in content if not m.startswith(BINARY_MEDIA)]
            if typed and f"response_{status} = " not in source:
                report.untyped.append(f"{method.upper()} {path} {status}")
    classes = set()
    for model in (out / "models").rglob("*.py"):
        classes |= set(re.findall(r"^class (\w+)", model.read_text(), re.MULTILINE))
    for name in document.get("components", {}).get("schemas", {}):
        if _class_name(name) not in classes:
            report.dropped_schemas.append(name)
    return report


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _class_name(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name)
    return "".join(word[:1].upper() + word[1:] for word in words if word)


# --- Node tools (openapi-typescript, tsc, Redocly) -----------------------------------------


def node_tools_available() -> str | None:
    """None when Node and npm can run the pinned tools, else why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js/npm are not installed"
    return None


def install_node_tools() -> None:
    """`npm ci` from tools/contract/package-lock.json, once (a no-op when installed)."""
    marker = NODE_TOOLS / "node_modules" / ".package-lock.json"
    lock = NODE_TOOLS / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
        cwd=NODE_TOOLS,
        check=True,
        capture_output=True,
        timeout=600,
    )


def node_tool(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run a tool of tools/contract/node_modules/.bin (or `node` itself) in tools/contract."""
    binary = "node" if args[0] == "node" else str(NODE_TOOLS / "node_modules" / ".bin" / args[0])
    return subprocess.run(
        [binary, *args[1:]],
        cwd=NODE_TOOLS,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class LintResult:
    errors: dict[str, int]
    warnings: dict[str, int]
    output: str


def redocly_lint(spec: Path) -> LintResult:
    """`redocly lint` with the recommended ruleset (tools/contract/redocly.yaml)."""
    result = node_tool(
        "redocly",
        "lint",
        str(spec),
        "--config",
        str(NODE_TOOLS / "redocly.yaml"),
        "--format",
        "json",
        "--max-problems",
        "10000",
    )
    start = result.stdout.find("{")
    data = json.loads(result.stdout[start:]) if start >= 0 else {"problems": []}
    errors: dict[str, int] = {}
    warnings: dict[str, int] = {}
    for problem in data.get("problems", []):
        bucket = errors if problem["severity"] == "error" else warnings
        bucket[problem["ruleId"]] = bucket.get(problem["ruleId"], 0) + 1
    return LintResult(errors, warnings, result.stdout + result.stderr)
