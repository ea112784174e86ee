"""ASGI middleware: request context (id, logs, metrics) and request guards (size, media
type, NUL in the query string).

Pure ASGI rather than BaseHTTPMiddleware so bodies stream and contextvars propagate.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from urllib.parse import parse_qsl

import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import FieldError, problem_response
from app.core.json_depth import BODY_CHUNKS
from app.core.observability import HTTP_LATENCY, HTTP_REQUESTS
from app.core.outages import RETRY_AFTER_SECONDS, is_outage
from app.core.request_context import set_request_id

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}

log = structlog.get_logger("herald.access")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _unhandled_problem(exc: Exception) -> JSONResponse:
    if is_outage(exc):
        # PostgreSQL or Redis unreachable, restarting, or the connection broke mid-request:
        # retryable, and a broken pool connection has been invalidated (the retry gets a
        # fresh one).
        return problem_response(
            503,
            "A storage service (database or Redis) is unavailable; retry the request.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return problem_response(
        500, "An unexpected error occurred. Quote the request_id when reporting it."
    )


class RequestContextMiddleware:
    """Assigns the request id, logs one line per request and records Prometheus metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        set_request_id(request_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status_holder = {"status": 500, "started": 0}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = 1
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Last line of defence: log the internals, answer a bare 500 problem (or 503 for
            # an outage, logged without the traceback: one line per request is enough).
            if is_outage(exc):
                log.warning("storage_unavailable", error=f"{type(exc).__name__}: {exc}")
            else:
                log.exception("unhandled_error")
            if status_holder["started"]:
                raise
            await _unhandled_problem(exc)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], route_path, status_holder["status"]).inc()
            HTTP_LATENCY.labels(scope["method"], route_path).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=route_path,
                status=status_holder["status"],
                duration_ms=round(elapsed * 1000, 2),
            )


class _BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it instead of answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes.")


class RequestGuardMiddleware:
    """Body size limit (413) and JSON-only bodies (415) before any handler runs.

    `upload_paths` are regexes of routes that accept files (larger limit, any media type);
    `any_media_paths` accept any media type within the normal limit (RFC 8058's form body).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_paths: Iterable[str] = (),
        any_media_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_paths = [re.compile(pattern) for pattern in upload_paths]
        self.any_media_paths = [re.compile(pattern) for pattern in any_media_paths]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nul_parameter = _query_parameter_with_nul(scope.get("query_string", b""))
        if nul_parameter is not None:
            await _nul_in_query(nul_parameter)(scope, receive, send)
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        is_upload = any(p.match(scope["path"]) for p in self.upload_paths)
        limit = self.max_upload_bytes if is_upload else self.max_body_bytes
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._too_large(limit, scope, receive, send)
            return
        has_body = (declared is not None and int(declared) > 0) or header(
            scope, b"transfer-encoding"
        ) is not None
        any_media = is_upload or any(p.match(scope["path"]) for p in self.any_media_paths)
        if has_body and not any_media and not _is_json(header(scope, b"content-type")):
            response = problem_response(
                415, "Send the body as JSON with `Content-Type: application/json`."
            )
            await response(scope, receive, send)
            return

        received = 0
        response_started = False
        # A JSON body's chunks (not an upload's), for the 422 `too_deep` of a body the JSON
        # reader gave up on (app/core/json_depth.py); the bytes are shared, not copied.
        chunks: list[bytes] | None = None if is_upload else scope.setdefault(BODY_CHUNKS, [])

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
                if chunks is not None:
                    chunks.append(message.get("body", b""))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if response_started:
                raise
            await self._too_large(limit, scope, receive, send)

    @staticmethod
    async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, f"The request body exceeds the limit of {limit} bytes.")
        await response(scope, receive, send)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _query_parameter_with_nul(query_string: bytes) -> str | None:
    """The first query parameter whose name or value holds NUL, which no PostgreSQL text can
    store: refusing it here keeps every string filter from reaching the driver with it."""
    if b"\x00" not in query_string and b"%00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\u0000")
    return None


def _nul_in_query(parameter: str) -> JSONResponse:
    return problem_response(
        422,
        f"Query parameter `{parameter}` contains a NUL character (\\u0000), which is not allowed.",
        errors=[
            FieldError(
                pointer=f"/{parameter}",
                location="query",
                message="must not contain NUL characters (\\u0000)",
                code="string_pattern_mismatch",
            )
        ],
    )
