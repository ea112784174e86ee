"""Problem responses: declared by routes, completed for every operation of the document.

Routes list the statuses particular to them (`problem_responses(*COMMON_ERRORS, 404, 409)`);
`complete_problem_responses` then makes every operation's error answers true and uniform:
each one is `application/problem+json` with the one `Problem` schema, the statuses that the
shared machinery can answer are added (auth and rate limit on authenticated operations, body
limits only where there is a body, the idempotency conflicts on POST, 503 when a dependency is
down), and statuses an operation cannot answer (413/415 without a body) are dropped.
"""

from __future__ import annotations

from typing import Any

from app.core.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, Problem

PROBLEM_REF = "#/components/schemas/Problem"
REQUEST_ID_EXAMPLE = "5f0c6a2b9d8e4f71"

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

# Every authenticated operation can answer these (413/415 are dropped again where the
# operation takes no body, see `complete_problem_responses`).
COMMON_ERRORS = (400, 401, 403, 413, 415, 429)

_IN_FLIGHT = (
    "Also when a request with the same `Idempotency-Key` is still in flight "
    "(`idempotency-key-in-flight`; retry after `Retry-After`)."
)
_KEY_REUSED = (
    "Also when the `Idempotency-Key` was used with a different request (`idempotency-key-reused`)."
)
_BAD_KEY = "Also when the `Idempotency-Key` is not 1-255 visible ASCII characters."


def problem_example(status: int, detail: str | None = None) -> dict[str, Any]:
    slug, description, title = _DESCRIPTIONS[status]
    example: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail or description,
        "request_id": REQUEST_ID_EXAMPLE,
    }
    if status == 422:
        example["errors"] = [
            {
                "pointer": "/name",
                "location": "body",
                "message": "Field required",
                "code": "missing",
            }
        ]
    return example


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented problem answers of a route (completed by `complete_problem_responses`)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        _, description, _ = _DESCRIPTIONS[status]
        responses[status] = {
            "model": Problem,
            "description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"example": problem_example(status)}},
        }
    return responses


def _takes_body(operation: dict[str, Any]) -> bool:
    return "requestBody" in operation


def _json_only_body(operation: dict[str, Any]) -> bool:
    content = operation.get("requestBody", {}).get("content", {})
    return set(content) == {"application/json"}


def _authenticated(operation: dict[str, Any]) -> bool:
    return bool(operation.get("security"))


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The statuses this operation can answer with a problem."""
    declared = {int(status) for status in operation["responses"] if status[0] in "45"}
    statuses = set(declared)
    if _takes_body(operation):
        statuses |= {400, 413, 422}
        if _json_only_body(operation):
            statuses.add(415)
    else:
        statuses -= {413, 415}
    if operation.get("parameters"):
        statuses.add(422)
    if _authenticated(operation):
        statuses |= {401, 403, 429, 503}
        if "{" in path:
            statuses.add(404)
        if method == "post":
            # The idempotency middleware: a malformed key, a key still in flight, a reused key.
            statuses |= {400, 409, 422}
    elif "Operations" not in operation.get("tags", []):
        # Public routes (tracking, unsubscribe, inbound) read the database: 503 when it is
        # down. Health and metrics routes declare their own.
        statuses.add(503)
    return statuses


def complete_problem_responses(document: dict[str, Any]) -> None:
    """Every error answer of every operation: true statuses, one Problem schema, examples."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            responses: dict[str, Any] = operation["responses"]
            statuses = _error_statuses(path, method, operation)
            for code in [c for c in responses if c[0] in "45" and int(c) not in statuses]:
                del responses[code]
            authenticated_post = method == "post" and _authenticated(operation)
            for status in sorted(statuses):
                responses[str(status)] = _problem_response(
                    status, responses.get(str(status), {}), authenticated_post
                )
            # Keep responses in status order (stable documents, readable docs pages).
            operation["responses"] = dict(sorted(responses.items()))


def _problem_response(
    status: int, declared: dict[str, Any], authenticated_post: bool
) -> dict[str, Any]:
    description = declared.get("description") or _DESCRIPTIONS[status][1]
    if authenticated_post:
        extra = {409: _IN_FLIGHT, 422: _KEY_REUSED, 400: _BAD_KEY}.get(status)
        if extra and extra not in description:
            description = f"{description} {extra}"
    media = declared.get("content", {}).get(PROBLEM_MEDIA_TYPE, {})
    example = media.get("example") or problem_example(status)
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}, "example": example}},
    }
    if declared.get("headers"):
        response["headers"] = declared["headers"]
    return response
