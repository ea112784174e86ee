"""The committed OpenAPI document is current, and every operation is documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.cli import OPENAPI_PATH, render_openapi
from app.config import Settings
from app.main import create_app

UNAUTHENTICATED = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/t/o/{token}",
    "/v1/t/c/{token}",
    "/v1/unsubscribe/{token}",
    "/v1/inbound/{provider}",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    openapi: dict[str, Any] = create_app(Settings(database_url=None, redis_url=None)).openapi()
    return openapi


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def test_committed_document_is_current() -> None:
    app = create_app(Settings(database_url=None, redis_url=None))
    assert Path(OPENAPI_PATH).read_text() == render_openapi(app), (
        "openapi/openapi.json is stale: run `uv run herald openapi` and commit it"
    )


def test_every_operation_is_documented(document: dict[str, Any]) -> None:
    problems: list[str] = []
    for path, method, operation in operations(document):
        label = f"{method.upper()} {path}"
        for field in ("summary", "description", "tags", "operationId"):
            if not operation.get(field):
                problems.append(f"{label}: no {field}")
        statuses = set(operation["responses"])
        if path not in UNAUTHENTICATED:
            if not {"401", "403", "429"} <= statuses:
                problems.append(f"{label}: auth errors undocumented")
            if operation.get("security") is None:
                problems.append(f"{label}: no security requirement")
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and (
                "application/problem+json" not in response.get("content", {})
            ):
                problems.append(f"{label}: {status} is not problem+json")
        if "requestBody" in operation:
            for media in operation["requestBody"]["content"].values():
                if not resolve(document, media.get("schema", {})).get("examples"):
                    problems.append(f"{label}: request body has no examples")
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            content = response.get("content", {})
            media = content.get("application/json")
            if media is None:
                if content and not any("example" in item for item in content.values()):
                    problems.append(f"{label}: {status} has no example")
                continue
            schema = resolve(document, media["schema"])
            items = schema.get("properties", {}).get("data", {}).get("items")
            target = resolve(document, items) if items else schema
            if not target.get("examples"):
                problems.append(f"{label}: {status} response has no examples")
    assert problems == []


def test_security_scheme_is_declared(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"


def test_operation_ids_are_unique_handler_names(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    assert "list_members" in ids
