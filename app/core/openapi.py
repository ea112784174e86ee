"""OpenAPI helpers: documented problem responses and the final schema touches."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, Problem

_DESCRIPTIONS: dict[int, tuple[str, str, str]] = {
    400: ("bad-request", "Malformed request (bad JSON, bad cursor, bad header).", "Bad request"),
    401: ("unauthorized", "Missing, malformed, unknown or revoked API key.", "Unauthorized"),
    403: ("forbidden", "The API key lacks the scope this operation needs.", "Forbidden"),
    404: ("not-found", "No such resource in the caller's workspace.", "Not found"),
    409: ("conflict", "The request conflicts with the current state.", "Conflict"),
    412: ("precondition-failed", "`If-Match` does not match the current ETag.", "Precondition"),
    413: ("payload-too-large", "The request body exceeds the size limit.", "Payload too large"),
    415: ("unsupported-media-type", "The body must be `application/json`.", "Media type"),
    422: ("validation-error", "The request is well-formed but has invalid fields.", "Invalid"),
    429: ("rate-limited", "Too many requests for this key; see `Retry-After`.", "Rate limited"),
    503: ("service-unavailable", "A dependency (Postgres or Redis) is down.", "Unavailable"),
}

# Every authenticated operation can answer these.
COMMON_ERRORS = (400, 401, 403, 413, 415, 429)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        slug, description, title = _DESCRIPTIONS[status]
        responses[status] = {
            "model": Problem,
            "description": description,
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "example": {
                        "type": PROBLEM_BASE + slug,
                        "title": title,
                        "status": status,
                        "detail": description,
                        "request_id": "5f0c6a2b9d8e4f71",
                    }
                }
            },
        }
    return responses


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
    app.openapi_schema = schema
    return schema
