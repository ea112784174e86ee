"""`Location` on every 201: the URL of what the request created.

A route answering 201 gets its Location template at start-up: by default the POST path plus
`/{id}` (`POST /v1/contacts` -> `/v1/contacts/{id}`), or the `x-location` template it declares
in `openapi_extra` when what it creates lives elsewhere (`POST /v1/templates/{template_id}/
publish` -> `/v1/templates/{template_id}/versions/{number}`). Each `{name}` is filled from the
request's path parameters, else from the JSON body's top-level field of that name. The
middleware sits inside the idempotency middleware, so a replay carries the same Location.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOCATION_EXTENSION = "x-location"
_FIELD = re.compile(r"\{([^}/]+)\}")


def location_template(route: APIRoute) -> str | None:
    """The Location template of a route that answers 201, else None."""
    if route.status_code != 201:
        return None
    declared = (route.openapi_extra or {}).get(LOCATION_EXTENSION)
    return str(declared) if declared else f"{route.path}/{{id}}"


def fill(template: str, path_params: dict[str, Any], body: Any) -> str | None:
    """The template with every field filled, or None when one is missing."""
    values: dict[str, str] = {}
    for name in _FIELD.findall(template):
        value = path_params.get(name)
        if value is None and isinstance(body, dict):
            value = body.get(name)
        if value is None or isinstance(value, dict | list):
            return None
        values[name] = quote(str(value), safe="")
    return _FIELD.sub(lambda match: values[match.group(1)], template)


def api_routes(routes: Iterable[Any]) -> list[APIRoute]:
    """Every APIRoute, also those inside included routers."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        router = getattr(route, "original_router", None)
        if router is not None:
            found.extend(api_routes(router.routes))
    return found


class LocationMiddleware:
    """Adds `Location` to JSON 201 answers of routes that have a template and set none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def locating_send(message: Message) -> None:
            if message["type"] == "http.response.start" and _needs_location(message):
                route = scope.get("route")
                template = location_template(route) if isinstance(route, APIRoute) else None
                if template is not None:
                    held.append(message)
                    return
            if held:
                held.append(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    await _send_located(scope, held, send)
                    held.clear()
                return
            await send(message)

        await self.app(scope, receive, locating_send)


def _needs_location(start: Message) -> bool:
    """A 201 whose route did not set Location itself."""
    if start["status"] != 201:
        return False
    return all(name.lower() != b"location" for name, _ in start.get("headers", []))


async def _send_located(scope: Scope, messages: list[Message], send: Send) -> None:
    start, *bodies = messages
    raw = b"".join(message.get("body", b"") for message in bodies)
    route = scope["route"]
    template = location_template(route)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    location = fill(template, scope.get("path_params", {}), body) if template else None
    if location is not None:
        prefix = scope.get("root_path", "")
        start = {
            **start,
            "headers": [*start.get("headers", []), (b"location", (prefix + location).encode())],
        }
    await send(start)
    await send({"type": "http.response.body", "body": raw})
