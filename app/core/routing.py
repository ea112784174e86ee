"""Which methods a path supports, across every route of the app.

Starlette matches one route at a time: a 405 names only the methods of the first route whose
path matched, `OPTIONS` is a 405 like any other unknown method, and a literal sub-path
(`GET /v1/events/batch`, where only `POST` exists) is taken by another method's `{id}` route
and answers 422 "invalid id". This module groups the routes by path template (a *resource*),
so that:

- a 405 lists every method of the resource in `Allow` (app/core/errors.py);
- `OPTIONS` answers 204 with that `Allow`, on every route (CORS preflights are answered
  before, by Starlette's CORSMiddleware, when origins are configured);
- a path that a more literal template matches is that template's, whatever the method:
  `GET /v1/events/batch` is a 405 with `Allow: POST, OPTIONS`, never an id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import FastAPI, Request, routing
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import problem_response

_PARAM = re.compile(r"^\{[^}]+\}$")


@dataclass(frozen=True)
class Resource:
    """Every route sharing one path template."""

    template: str
    regex: re.Pattern[str]
    methods: frozenset[str]
    # Per segment, 0 for a literal and 1 for a parameter: the lowest key is the most literal.
    specificity: tuple[int, ...]

    @property
    def allow(self) -> str:
        return ", ".join(sorted(self.methods | {"OPTIONS"}))


def _specificity(template: str) -> tuple[int, ...]:
    return tuple(int(bool(_PARAM.match(part))) for part in template.strip("/").split("/"))


def _sample_path(template: str) -> str:
    """A concrete path of the template (each parameter replaced by a value no literal has)."""
    return re.sub(r"\{[^}]+\}", "0190f3c8-8d2e-7b61-9a55-000000000000", template)


class ResourceTable:
    """The app's resources, most literal first; filled once every router is included."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self._literal: dict[str, Resource] = {}
        self._shadowed: list[Resource] = []

    def load(self, routes: Sequence[BaseRoute]) -> None:
        grouped: dict[str, tuple[re.Pattern[str], set[str]]] = {}
        for context in routing.iter_route_contexts(routes):
            template, methods = context.path_format, context.methods
            if template is None or methods is None:
                continue
            _, known = grouped.setdefault(template, (context.path_regex, set()))
            known.update(methods)
        self.resources = sorted(
            (
                Resource(template, regex, frozenset(methods), _specificity(template))
                for template, (regex, methods) in grouped.items()
            ),
            key=lambda resource: resource.specificity,
        )
        # A resource is "shadowed" when a less literal template also matches its paths:
        # Starlette would hand those paths to the other template's routes for other methods.
        self._shadowed = [
            resource
            for resource in self.resources
            if any(
                other is not resource
                and other.specificity > resource.specificity
                and other.regex.match(_sample_path(resource.template))
                for other in self.resources
            )
        ]
        self._literal = {r.template: r for r in self._shadowed if not any(r.specificity)}

    def resource_for(self, path: str) -> Resource | None:
        """The most literal resource whose template matches `path`."""
        for resource in self.resources:
            if resource.regex.match(path):
                return resource
        return None

    def shadowed_resource_for(self, path: str) -> Resource | None:
        """The resource of `path` when another, less literal template also matches it."""
        literal = self._literal.get(path)
        if literal is not None:
            return literal
        for resource in self._shadowed:
            if any(resource.specificity) and resource.regex.match(path):
                return resource
        return None


class MethodRoutingMiddleware:
    """Answers `OPTIONS` (204 + `Allow`) and keeps literal sub-paths from being taken as ids.

    Innermost, so answers still carry the request id, CORS headers and access log line.
    Costs a dict lookup (plus a regex per partly literal shadowed template) per request.
    """

    def __init__(self, app: ASGIApp, table: ResourceTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if method == "OPTIONS":
            resource = self.table.resource_for(path)
        else:
            resource = self.table.shadowed_resource_for(path)
            if resource is not None and method in resource.methods:
                resource = None  # its own route answers
        if resource is None:
            await self.app(scope, receive, send)
            return
        if method == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": resource.allow})
        else:
            response = method_not_allowed(method, path, resource)
        await response(scope, receive, send)


def method_not_allowed(method: str, path: str, resource: Resource) -> Response:
    return problem_response(
        405, f"{method} is not allowed on {path}.", headers={"Allow": resource.allow}
    )


def install_method_routing(app: FastAPI) -> ResourceTable:
    """Add the middleware and the 405 handler; `load` the returned table once every router is
    included (the middleware is innermost, so it is added before the routes exist)."""
    table = ResourceTable()
    app.add_middleware(MethodRoutingMiddleware, table=table)

    async def handle_405(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        method, path = request.method, request.url.path
        resource = table.resource_for(path)
        if resource is None:  # a route matched, so only a table not loaded gets here
            allow = dict(exc.headers or {}).get("Allow", "")
            return problem_response(
                405, f"{method} is not allowed on {path}.", headers={"Allow": allow}
            )
        if method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": resource.allow})
        return method_not_allowed(method, path, resource)

    app.add_exception_handler(405, handle_405)
    return table
