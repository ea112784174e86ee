"""The OpenAPI document: FastAPI's generation, then the rules that make it a contract.

Routes declare what is particular to them (summary, examples, their own error statuses);
everything shared is applied here to every operation, so a new route is complete without
repeating it: problem responses with the one `Problem` schema (problems.py), request and
response headers and `security: []` on public operations (headers.py), page and enum names
(names.py). See docs/api.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.core.errors import PROBLEM_MEDIA_TYPE
from app.core.openapi.examples import complete_examples
from app.core.openapi.headers import declare_headers
from app.core.openapi.names import name_enums, rename_components
from app.core.openapi.problems import (
    COMMON_ERRORS,
    complete_problem_responses,
    problem_example,
    problem_responses,
)

__all__ = [
    "COMMON_ERRORS",
    "SSE_ITEM_SCHEMA",
    "build_openapi",
    "document_model",
    "problem_example",
    "problem_responses",
]

# Models described in `components/schemas` though no route body references them directly:
# the `data` of server-sent events (referenced from the stream's media type with
# SSE_ITEM_SCHEMA, OpenAPI 3.2's `itemSchema` as a 3.1 extension).
_DOCUMENTED_MODELS: list[type[BaseModel]] = []
SSE_ITEM_SCHEMA = "x-itemSchema"


def document_model(model: type[BaseModel]) -> dict[str, str]:
    """Put `model` in the document's components; returns a `$ref` to it."""
    if model not in _DOCUMENTED_MODELS:
        _DOCUMENTED_MODELS.append(model)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _add_documented_models(schema: dict[str, Any]) -> None:
    if not _DOCUMENTED_MODELS:
        return
    _, top = models_json_schema(
        [(model, "serialization") for model in _DOCUMENTED_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in top.get("$defs", {}).items():
        components.setdefault(name, definition)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        webhooks=app.webhooks.routes,
        tags=app.openapi_tags,
        servers=[{"url": "/", "description": "This server"}],
    )
    # Problem bodies are served as application/problem+json only.
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if PROBLEM_MEDIA_TYPE in content and "application/json" in content:
                    del content["application/json"]
    _add_documented_models(schema)
    complete_problem_responses(schema)
    declare_headers(schema)
    rename_components(schema)
    name_enums(schema)
    complete_examples(schema)
    app.openapi_schema = schema
    return schema
