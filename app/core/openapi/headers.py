"""Headers and security, declared on every operation by rule (so new routes get them too).

- `Idempotency-Key` request header on every authenticated POST (app/core/idempotency.py).
- `X-Request-Id` on every response (app/core/middleware.py).
- `RateLimit` / `RateLimit-Policy` on the responses of authenticated operations, `Retry-After`
  on 429, 503 and the idempotency 409 (app/core/ratelimit.py, app/core/idempotency.py).
- `Idempotent-Replayed` on the 2xx answers of authenticated POSTs.
- `Location` on every 201 (app/core/locations.py).
- `security: []` on public operations and on webhooks: no credentials, said explicitly.
"""

from __future__ import annotations

from typing import Any

from app.core.locations import LOCATION_EXTENSION

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "This request's id (the caller's `X-Request-Id` when it sent a valid "
        "one); also `request_id` in problem bodies and in the logs.",
        "schema": {"type": "string", "examples": ["5f0c6a2b9d8e4f71"]},
    },
    "RateLimit": {
        "description": "IETF RateLimit field: requests `r` left in the current window of the "
        "key's `per-key` policy, and seconds `t` until it resets.",
        "schema": {"type": "string", "examples": ['"per-key";r=598;t=42']},
    },
    "RateLimit-Policy": {
        "description": "IETF RateLimit-Policy field: quota `q` requests per window of `w` "
        "seconds for each API key.",
        "schema": {"type": "string", "examples": ['"per-key";q=600;w=60']},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1, "examples": [17]},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the "
        "same `Idempotency-Key`; absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Location": {
        "description": "The URL of the created resource.",
        "schema": {"type": "string", "format": "uri-reference"},
    },
}

IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the first answer is stored for 24 hours and replayed "
    "(with `Idempotent-Replayed: true`) for the same key and body; the same key with another "
    "body answers 422, and while the first request runs, 409.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[\\x21-\\x7e]+$",
        "examples": ["3f1c9a52-launch-2030-01-01"],
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def declare_headers(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {})
    components.setdefault("headers", {}).update(HEADERS)
    components.setdefault("parameters", {})["IdempotencyKey"] = IDEMPOTENCY_KEY
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            authenticated = bool(operation.get("security"))
            if not authenticated:
                operation["security"] = []
            if method == "post" and authenticated:
                parameters = operation.setdefault("parameters", [])
                parameters.insert(0, {"$ref": "#/components/parameters/IdempotencyKey"})
            for status, response in operation["responses"].items():
                headers = _response_headers(method, status, authenticated)
                response["headers"] = {**headers, **response.get("headers", {})}
            operation.pop(LOCATION_EXTENSION, None)
    for item in document.get("webhooks", {}).values():
        for operation in item.values():
            operation["security"] = []


def _response_headers(method: str, status: str, authenticated: bool) -> dict[str, Any]:
    headers = {"X-Request-Id": _ref("X-Request-Id")}
    if authenticated and status != "401":
        headers["RateLimit"] = _ref("RateLimit")
        headers["RateLimit-Policy"] = _ref("RateLimit-Policy")
    if status in ("429", "503") or (status == "409" and method == "post" and authenticated):
        headers["Retry-After"] = _ref("Retry-After")
    if status.startswith("2") and method == "post" and authenticated:
        headers["Idempotent-Replayed"] = _ref("Idempotent-Replayed")
    if status == "201":
        headers["Location"] = _ref("Location")
    return headers
