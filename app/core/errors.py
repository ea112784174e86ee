"""RFC 9457 problem details for every error Herald returns.

Each problem has a stable `type` URI (documented in docs/errors.md), a `title`, the HTTP
`status`, a human `detail`, optional field `errors`, and the `request_id`. Internals (stack
traces, SQL, driver messages) never reach the client.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from app.core.request_context import current_request_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://herald.dev/problems/"


class FieldError(BaseModel):
    pointer: str = Field(description="JSON pointer into the request part, e.g. `/name`")
    location: str = Field(description="`body`, `query`, `path` or `header`")
    message: str
    code: str = Field(description="Machine-readable reason, e.g. `missing`, `extra_forbidden`")


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every 4xx and 5xx answer."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://herald.dev/problems/not-found",
                    "title": "Not found",
                    "status": 404,
                    "detail": "No member with id 0190f3c8-8d2e-7b61-9a55-000000000000.",
                    "request_id": "5f0c6a2b9d8e4f71",
                }
            ]
        },
    )

    type: str = Field(description="Stable URI of the problem type (docs/errors.md).")
    title: str
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong, for a person.")
    instance: str | None = None
    request_id: str | None = Field(None, description="Also in `X-Request-Id` and the logs.")
    errors: list[FieldError] | None = Field(None, description="One entry per invalid field.")
    # Extension members (RFC 9457 section 3.2) some problems carry; others may be added.
    allowed: list[str] | None = Field(
        None, description="409 on a state change: the actions the current state allows."
    )
    current_status: str | None = Field(
        None, description="409 on a state change: the resource's current status."
    )
    current_etag: str | None = Field(None, description="412: the resource's current ETag.")
    referenced_by: list[str] | None = Field(
        None, description="409 on a delete: ids of what still uses the resource."
    )


class AppError(Exception):
    """Base of every deliberate error; subclasses fix status and problem type."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="herald"'})


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(AppError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(AppError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(AppError):
    status, slug, title = 422, "validation-error", "Validation error"


class TooManyRequests(AppError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


_GENERIC_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition-failed", "Precondition failed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Validation error"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("service-unavailable", "Service unavailable"),
}


# Members with fixed meanings: RFC 9457's own, plus Herald's `request_id` and `errors`.
RESERVED_MEMBERS = frozenset(
    {"type", "title", "status", "detail", "instance", "request_id", "errors"}
)


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    default_slug, default_title = _GENERIC_BY_STATUS.get(status, ("error", "Error"))
    clashing = RESERVED_MEMBERS.intersection(extra or {})
    if clashing:
        # RFC 9457 gives these members fixed meanings (`status` is the HTTP status code);
        # domain data goes in members of its own (e.g. a campaign's `current_status`).
        raise ValueError(f"problem extension members clash with RFC 9457: {sorted(clashing)}")
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or default_slug),
        "title": title or default_title,
        "status": status,
        "detail": detail,
        "request_id": current_request_id(),
    }
    if errors:
        body["errors"] = [error.model_dump() for error in errors]
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def pointer_for(loc: tuple[int | str, ...]) -> tuple[str, str]:
    """Split a pydantic error location into (request part, JSON pointer)."""
    if not loc:
        return "body", ""
    part, *rest = loc
    escaped = [str(item).replace("~", "~0").replace("/", "~1") for item in rest]
    return str(part), "/" + "/".join(escaped) if escaped else ""


def _validation_errors(exc: RequestValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for error in exc.errors():
        location, pointer = pointer_for(tuple(error.get("loc", ())))
        errors.append(
            FieldError(
                pointer=pointer,
                location=location,
                message=str(error.get("msg", "invalid")),
                code=str(error.get("type", "invalid")),
            )
        )
    return errors


async def _handle_app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        exc.status,
        exc.detail,
        slug=exc.slug,
        title=exc.title,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if any(error.code == "json_invalid" for error in errors):
        return problem_response(
            400, "The request body is not valid JSON.", slug="malformed-json", errors=errors
        )
    names = ", ".join(sorted({f"{e.location}{e.pointer}" for e in errors}))
    return problem_response(422, f"The request has invalid fields: {names}.", errors=errors)


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    from app.core.json_depth import too_deep_problem  # imports this module

    if (too_deep := too_deep_problem(request, exc)) is not None:
        return too_deep
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _handle_app_error)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
