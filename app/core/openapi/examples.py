"""Examples shown as the API sends them.

A response model serialises every field, `null` included, but examples are written by hand
and tend to leave the nulls out (`revoked_at` of a live key). `complete_examples` adds every
required property that the example leaves out and whose schema admits `null`, as `null`, at any
depth; anything else an example gets wrong stays wrong and fails the example test
(tests/contract/test_openapi_contract.py). Local wall-clock times (`09:00`) are documented as
RFC 3339 `partial-time`, not `time` (which needs an offset).
"""

from __future__ import annotations

from typing import Any

_SCHEMAS = "#/components/schemas/"
_LOCAL_TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?$"


def complete_examples(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    _local_times(document)
    for schema in schemas.values():
        for example in schema.get("examples") or []:
            _fill(example, schema, schemas, depth=0)
    for item in document.get("paths", {}).values():
        for operation in item.values():
            bodies = [operation.get("requestBody", {})]
            bodies += list(operation.get("responses", {}).values())
            for body in bodies:
                for media in body.get("content", {}).values():
                    if "example" in media and "schema" in media:
                        _fill(media["example"], media["schema"], schemas, depth=0)


def _resolve(schema: Any, schemas: dict[str, Any]) -> Any:
    while isinstance(schema, dict) and str(schema.get("$ref", "")).startswith(_SCHEMAS):
        schema = schemas.get(schema["$ref"][len(_SCHEMAS) :], {})
    return schema


def _admits_null(schema: Any, schemas: dict[str, Any]) -> bool:
    schema = _resolve(schema, schemas)
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "null" or "null" in (schema.get("type") or []):
        return True
    return any(_admits_null(option, schemas) for option in schema.get("anyOf", []))


def _fill(example: Any, schema: Any, schemas: dict[str, Any], depth: int) -> None:
    schema = _resolve(schema, schemas)
    if depth > 16 or not isinstance(schema, dict):
        return
    if isinstance(example, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in example and _admits_null(properties.get(name), schemas):
                example[name] = None
        for name, value in example.items():
            if name in properties:
                _fill(value, properties[name], schemas, depth + 1)
        for option in schema.get("anyOf", []) + schema.get("allOf", []):
            if _resolve(option, schemas).get("type") == "object":
                _fill(example, option, schemas, depth + 1)
    elif isinstance(example, list) and "items" in schema:
        for value in example:
            _fill(value, schema["items"], schemas, depth + 1)
    for option in schema.get("anyOf", []) if not isinstance(example, dict) else []:
        _fill(example, option, schemas, depth + 1)


def _local_times(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("format") == "time" and node.get("type") == "string":
            node["format"] = "partial-time"
            node.setdefault("pattern", _LOCAL_TIME_PATTERN)
        for value in node.values():
            _local_times(value)
    elif isinstance(node, list):
        for value in node:
            _local_times(value)
